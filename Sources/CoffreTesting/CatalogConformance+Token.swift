import CoffreCore
import Foundation
import Testing

/// API tokens on every catalog: kept by hash, oldest first, one first token however many
/// nodes start together.
extension CatalogConformance {
    static func token(_ name: String, _ role: Role, at seconds: Double) -> APIToken {
        APIToken(name: name, role: role, hash: String(repeating: Character(name.prefix(1).lowercased()), count: 64),
                 createdAt: CatalogSample.at(seconds))
    }

    static func tokensAreKeptByHashOldestFirst(_ catalog: any Catalog) async throws {
        #expect(try await catalog.tokens().isEmpty)
        let admin = Self.token("admin", .admin, at: 1.5), reader = Self.token("reader", .reader, at: 2.25)
        #expect(try await catalog.insertToken(reader, ifNoneExists: false))
        #expect(try await catalog.insertToken(admin, ifNoneExists: true) == false, "a token exists already")
        #expect(try await catalog.insertToken(admin, ifNoneExists: false))
        #expect(try await catalog.tokens() == [admin, reader])
        #expect(try await catalog.token(hash: reader.hash) == reader)
        #expect(try await catalog.token(hash: String(repeating: "0", count: 64)) == nil)
        await expectError(.catalogFailed) { try await catalog.insertToken(reader, ifNoneExists: false) }
    }

    static func ofManyFirstTokensInsertedAtOnceOneIsKept(_ catalog: any Catalog) async throws {
        let kept = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<20 {
                let token = APIToken(name: "admin", role: .admin, hash: String(format: "%064x", index), createdAt: CatalogSample.at(1))
                group.addTask { try await catalog.insertToken(token, ifNoneExists: true) }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(kept == 1)
        #expect(try await catalog.tokens().count == 1)
    }
}
