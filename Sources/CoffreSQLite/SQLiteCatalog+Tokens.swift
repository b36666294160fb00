public import CoffreCore
import Foundation
internal import GRDB

extension SQLiteCatalog {
    @discardableResult
    public func insertToken(_ token: APIToken, ifNoneExists: Bool) async throws -> Bool {
        // One IMMEDIATE transaction: the check and the insert see the same table.
        try await write { db in
            if ifNoneExists, try Int.fetchOne(db, sql: "SELECT count(*) FROM api_tokens") ?? 0 > 0 { return false }
            try Self.insert(token, db)
            return true
        }
    }

    static func insert(_ token: APIToken, _ db: Database) throws {
        try db.execute(sql: "INSERT INTO api_tokens (hash, name, role, createdAt) VALUES (?, ?, ?, ?)",
                       arguments: [token.hash, token.name, token.role.rawValue, token.createdAt.stored])
    }

    public func tokens() async throws -> [APIToken] {
        try await read(Self.tokens)
    }

    static func tokens(_ db: Database) throws -> [APIToken] {
        try Row.fetchAll(db, sql: "SELECT * FROM api_tokens ORDER BY createdAt, hash").map(token)
    }

    public func token(hash: String) async throws -> APIToken? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM api_tokens WHERE hash = ?", arguments: [hash]).map(Self.token)
        }
    }

    static func token(_ row: Row) throws -> APIToken {
        APIToken(name: row["name"], role: try decodeRaw(row["role"], column: "api_tokens.role"), hash: row["hash"],
                 createdAt: Date(stored: row["createdAt"]))
    }
}
