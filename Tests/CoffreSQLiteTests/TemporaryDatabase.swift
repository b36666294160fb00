import CoffrePostgres
import CoffreTesting
import Foundation
import Logging
import PostgresNIO

/// Runs `body` with the URL of a new empty database of the test server, dropped afterwards
/// (connections still open to it are cut).
func withTemporaryDatabase(_ body: (String) async throws -> Void) async throws {
    let name = PostgresTestServer.newDatabaseName("test")
    try await administer("CREATE DATABASE \(name)")
    do {
        try await body(PostgresTestServer.url(database: name))
    } catch {
        try? await administer("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        throw error
    }
    try await administer("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
}

/// Runs `sql` (made of names the tests choose, never of input) on the database of `url`, by
/// default the test server's own.
func administer(_ sql: String, database url: String = PostgresTestServer.url) async throws {
    _ = try await administerQuery(sql, database: url)
}

/// The first column of the rows `sql` returns, as text.
func administerQuery(_ sql: String, database url: String = PostgresTestServer.url) async throws -> [String] {
    let url = try PostgresURL(url)
    let logger = Logger(label: "coffre.tests.postgres")
    let configuration = PostgresConnection.Configuration(
        host: url.host, port: url.port, username: url.user, password: url.password, database: url.database, tls: .disable)
    let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
    do {
        var values: [String] = []
        for try await row in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger) {
            values.append(try row.decode(String.self, context: .default))
        }
        try await connection.close()
        return values
    } catch {
        try? await connection.close()
        throw error
    }
}
