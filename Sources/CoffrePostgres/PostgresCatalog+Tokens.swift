public import CoffreCore
import Foundation
internal import PostgresNIO

extension PostgresCatalog {
    @discardableResult
    public func insertToken(_ token: APIToken, ifNoneExists: Bool) async throws -> Bool {
        try await transaction { connection in
            if ifNoneExists {
                // Nodes starting together: the first to lock the table creates the admin token.
                try await connection.rows("LOCK TABLE api_tokens IN SHARE ROW EXCLUSIVE MODE", logger: connection.logger)
                let count = try await connection.rows("SELECT count(*) FROM api_tokens", logger: connection.logger)
                    .first?.decode(Int.self) ?? 0
                if count > 0 { return false }
            }
            try await Self.insert(token, connection)
            return true
        }
    }

    static func insert(_ token: APIToken, _ connection: PostgresConnection) async throws {
        try await connection.rows("""
            INSERT INTO api_tokens (hash, name, role, created_at)
            VALUES (\(token.hash), \(token.name), \(token.role.rawValue), \(token.createdAt.timeIntervalSinceReferenceDate))
            """, logger: connection.logger)
    }

    public func tokens() async throws -> [APIToken] {
        try await withConnection { connection in try await Self.tokens(connection) }
    }

    static func tokens(_ connection: PostgresConnection) async throws -> [APIToken] {
        try await connection.rows("SELECT name, role, hash, created_at FROM api_tokens ORDER BY created_at, hash",
                                  logger: connection.logger).map(token)
    }

    public func token(hash: String) async throws -> APIToken? {
        try await withConnection { [logger] connection in
            try await connection.rows("SELECT name, role, hash, created_at FROM api_tokens WHERE hash = \(hash)", logger: logger)
                .first.map(Self.token)
        }
    }

    static func token(_ row: PostgresRow) throws -> APIToken {
        let (name, role, hash, created) = try row.decode((String, String, String, Double).self)
        guard let known = Role(rawValue: role) else {
            throw CoffreError.catalogUnreadable("api_tokens.role", reason: "unknown role '\(role)'")
        }
        return APIToken(name: name, role: known, hash: hash, createdAt: Date(timeIntervalSinceReferenceDate: created))
    }
}
