public import CoffreCore
import Foundation
internal import Logging
internal import NIOCore
internal import NIOSSL
internal import PostgresNIO

/// The catalog in a PostgreSQL database, which several Coffre nodes share.
///
/// Connections come from one `PostgresClient` pool that the catalog runs itself (from `open`
/// to `close`). Opening applies the numbered migrations that are missing, one transaction
/// each, under a lock of the migrations table so that nodes starting together apply each one
/// once. Every value reaches the server as a bound parameter, never spliced into SQL text.
///
/// Each record is kept whole as JSON text (the domain type's own `Codable`, so nothing is left
/// behind when a field is added) next to the columns that queries, orderings and constraints
/// need; those columns are written from the record on every write and never read back into
/// it, except the ones a single call owns (a point's verification, a job's cancel request).
/// Decision 0023.
public final class PostgresCatalog: Catalog {
    /// How the catalog reaches its server.
    public struct Configuration: Sendable {
        /// How long an operation waits for a connection and its answer before `CatalogUnreachable`.
        public var timeout: Duration
        /// At most this many connections of this process.
        public var maximumConnections: Int

        public init(timeout: Duration = .seconds(30), maximumConnections: Int = 10) {
            self.timeout = timeout
            self.maximumConnections = maximumConnections
        }
    }

    /// The server and database, without the password: what errors and logs name.
    public let location: String
    let configuration: Configuration
    let client: PostgresClient
    let logger: Logger
    private let runner: Task<Void, Never>

    private init(url: PostgresURL, configuration: Configuration) {
        location = url.description
        self.configuration = configuration
        var options = PostgresClient.Configuration.Options()
        options.maximumConnections = configuration.maximumConnections
        options.connectTimeout = configuration.timeout
        var clientConfiguration = PostgresClient.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database,
            tls: url.requiresTLS ? .require(.makeClientConfiguration()) : .disable)
        clientConfiguration.options = options
        logger = Self.quietLogger
        client = PostgresClient(configuration: clientConfiguration, backgroundLogger: logger)
        runner = Task { [client] in await client.run() }
    }

    /// Connects to the database that `url` names (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`,
    /// `?sslmode=require` for TLS) and brings its tables up to date.
    /// - Throws: `InvalidArgument` for a malformed URL, `CatalogUnreachable` when the server
    ///   cannot be reached or refuses the login, `VaultFormatUnsupported` when a newer Coffre
    ///   migrated the database.
    public static func open(url: String, configuration: Configuration = Configuration()) async throws -> PostgresCatalog {
        let url = try PostgresURL(url)
        try await probe(url, configuration: configuration)
        let catalog = PostgresCatalog(url: url, configuration: configuration)
        do {
            try await catalog.migrate()
        } catch {
            catalog.close()
            throw error
        }
        return catalog
    }

    /// Connects once, alone: the pool retries a refused login or a missing database until the
    /// timeout and then only says it waited, where this gives the server's own words at once.
    private static func probe(_ url: PostgresURL, configuration: Configuration) async throws {
        do {
            let tls: PostgresConnection.Configuration.TLS = url.requiresTLS
                ? .require(try NIOSSLContext(configuration: .makeClientConfiguration())) : .disable
            var options = PostgresConnection.Configuration(
                host: url.host, port: url.port, username: url.user, password: url.password, database: url.database, tls: tls)
            options.options.connectTimeout = TimeAmount.nanoseconds(Int64(configuration.timeout.inSeconds * 1e9))
            let connection = try await PostgresConnection.connect(configuration: options, id: 0, logger: quietLogger)
            try await connection.close()
        } catch {
            throw coffreError(error, location: url.description)
        }
    }

    /// postgres-nio's own logs stay quiet: failures reach the user as catalog errors.
    private static var quietLogger: Logger {
        var logger = Logger(label: "coffre.catalog.postgres")
        logger.logLevel = .critical
        return logger
    }

    /// Closes every connection; any later call fails.
    public func close() {
        runner.cancel()
    }

    deinit {
        runner.cancel()
    }

    // MARK: Access

    /// Runs `body` with a connection of the pool, in a task of its own (a job being cancelled
    /// must still be able to record how it ended), within the configured timeout.
    @discardableResult
    func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await run { [client] in try await client.withConnection { try await body($0) } }
    }

    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
    @discardableResult
    func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await run { [client, logger] in
            try await client.withTransaction(logger: logger) { try await body($0) }
        }
    }

    /// Runs `operation` in a task of its own, raced against the timeout. When the time is up the
    /// caller gets `CatalogUnreachable` at once and the operation is cancelled but not waited
    /// for: a query on a connection whose server went away (PostgreSQL restarted) may ignore
    /// cancellation, and a task group waiting for it held a job in its step for ever (the
    /// restart test caught it). As before, the outcome of an operation that timed out is
    /// unknown: a write may still land, which every caller already allows for.
    private func run<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        let timeout = configuration.timeout
        let location = location
        do {
            return try await within(timeout, operation) {
                CoffreError.catalogUnreachable(location, seconds: timeout.inSeconds, detail: "no connection or no answer in time")
            }
        } catch {
            throw Self.coffreError(error, location: location)
        }
    }

    /// What a failed database access means to the user. Domain errors and cancellation pass.
    static func coffreError(_ error: any Error, location: String) -> any Error {
        switch error {
        case is CoffreError, is CancellationError, is ItemVMTaken:
            return error
        case let error as PostgresTransactionError:
            // What failed first: BEGIN, the transaction's own work, or COMMIT.
            guard let cause = error.beginError ?? error.closureError ?? error.commitError else {
                return CoffreError.catalogFailed(location, detail: "a transaction failed")
            }
            return coffreError(cause, location: location)
        case let error as UnreadableValue:
            return CoffreError.catalogUnreadable(location, reason: error.description)
        case let error as PSQLError:
            let message = error.serverInfo?[.message]
            let state = error.serverInfo?[.sqlState] ?? ""
            switch error.code {
            case .server where state.hasPrefix("28") || state == "3D000" || state.hasPrefix("08") || state.hasPrefix("57P"):
                // A refused login (28…), an unknown database, a connection exception (08…), or
                // a server shutting down or starting (57P01–57P03): retry once it is back.
                return CoffreError.catalogUnreachable(location, detail: "\(message ?? "server error") (SQLSTATE \(state))")
            case .server:
                return CoffreError.catalogFailed(location, detail: "\(message ?? "server error") (SQLSTATE \(state))")
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .sslUnsupported,
                 .failedToAddSSLHandler, .uncleanShutdown, .poolClosed, .unsupportedAuthMechanism,
                 .authMechanismRequiresPassword, .saslError:
                let cause = error.underlying.map { " (\($0))" } ?? ""
                return CoffreError.catalogUnreachable(location, detail: "\(error.code)\(cause)")
            default:
                return CoffreError.catalogFailed(location, detail: "\(error.code)")
            }
        default:
            return CoffreError.catalogFailed(location, detail: String(describing: error))
        }
    }
}

/// Another node protected the VM of an item being saved (the unique index said so).
struct ItemVMTaken: Error {}

extension PostgresConnection {
    /// Runs `query` and collects its rows.
    @discardableResult
    func rows(_ query: PostgresQuery, logger: Logger) async throws -> [PostgresRow] {
        var rows: [PostgresRow] = []
        for try await row in try await self.query(query, logger: logger) { rows.append(row) }
        return rows
    }

    /// The JSON documents of the first column, decoded.
    func documents<T: Decodable>(_ query: PostgresQuery, column: String, logger: Logger) async throws -> [T] {
        try await rows(query, logger: logger).map { row in
            try JSONColumn.decode(try row.decode(String.self), column: column)
        }
    }

    /// The first JSON document of the first column, decoded; nil when there is no row.
    func document<T: Decodable>(_ query: PostgresQuery, column: String, logger: Logger) async throws -> T? {
        let all: [T] = try await documents(query, column: column, logger: logger)
        return all.first
    }
}

