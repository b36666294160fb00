import CoffreCore
import CoffrePostgres
import CoffreSQLite
import CoffreTesting
import Foundation
import Testing

/// The catalogs the conformance tests run against: PostgreSQL when scripts/pg-harness is up
/// (always in CI, where a server that is down fails the tests).
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case memory
    case sqlite
    case postgres

    static var allCases: [Backend] { PostgresTestServer.live ? [.memory, .sqlite, .postgres] : [.memory, .sqlite] }

    var testDescription: String { rawValue }

    /// Runs `body` with an empty catalog, removed afterwards.
    ///
    /// Callers write `{ catalog throws in`: a closure whose only `try`s are inside `#expect`
    /// is otherwise type-checked as non-throwing (Swift 6.3).
    func withCatalog(_ body: (any Catalog) async throws -> Void) async throws {
        switch self {
        case .memory:
            try await body(MemoryCatalog())
        case .sqlite:
            try await withTemporaryFolder { folder in
                let catalog = try SQLiteCatalog(path: folder + "/catalog.sqlite")
                try await body(catalog)
                try catalog.close()
            }
        case .postgres:
            try await withTemporaryDatabase { url in
                let catalog = try await PostgresCatalog.open(url: url)
                do {
                    try await body(catalog)
                } catch {
                    catalog.close()
                    throw error
                }
                catalog.close()
            }
        }
    }
}

/// Runs `body` with the path of a folder that does not exist yet, and removes it afterwards.
func withTemporaryFolder(_ body: (String) async throws -> Void) async throws {
    let folder = NSTemporaryDirectory() + "coffre-catalog-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try await body(folder)
}
