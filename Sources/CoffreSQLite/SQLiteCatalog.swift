public import CoffreCore
public import Foundation
internal import GRDB

/// The embedded catalog: one SQLite file (WAL mode) that several Coffre processes may share.
///
/// Opening the file creates it and its folder when missing and brings its tables up to date.
/// Every write is one `IMMEDIATE` transaction: it takes the file's write lock before it reads,
/// so a check-then-insert (a job lock, one item per VM) holds across processes. A process
/// that finds the lock taken waits up to `Configuration.busyTimeout`.
public final class SQLiteCatalog: Catalog {
    /// How the catalog uses its file.
    public struct Configuration: Sendable {
        /// How long a write waits for another process to release the file's write lock.
        public var busyTimeout: TimeInterval

        public init(busyTimeout: TimeInterval = 10) {
            self.busyTimeout = busyTimeout
        }
    }

    /// The database file.
    public let path: String
    private let configuration: Configuration
    private let pool: DatabasePool

    /// Opens (or creates) the catalog at `path` and migrates it.
    /// - Throws: `CatalogUnreadable` when the file is not a catalog or cannot be opened,
    ///   `VaultFormatUnsupported` when a newer Coffre wrote it.
    public init(path: String, configuration: Configuration = Configuration()) throws {
        self.path = path
        self.configuration = configuration
        let folder = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: folder.isEmpty ? "." : folder, withIntermediateDirectories: true)
        } catch {
            throw CoffreError.catalogUnreadable(path, reason: "its folder cannot be created (\(error.localizedDescription))")
        }
        var options = GRDB.Configuration()
        options.busyMode = .timeout(configuration.busyTimeout)
        options.foreignKeysEnabled = true
        do {
            pool = try DatabasePool(path: path, configuration: options)
            try Self.migrate(pool, path: path)
        } catch {
            throw Self.coffreError(error, path: path, busyTimeout: configuration.busyTimeout)
        }
    }

    /// Closes the file; any later call fails.
    public func close() throws {
        do {
            try pool.close()
        } catch {
            throw Self.coffreError(error, path: path, busyTimeout: configuration.busyTimeout)
        }
    }

    private static func migrate(_ pool: DatabasePool, path: String) throws {
        let migrator = Schema.migrator
        if try pool.read(migrator.hasBeenSuperseded) {
            throw CoffreError.vaultFormatUnsupported("the catalog \(path) was written by a newer version of Coffre")
        }
        do {
            try migrator.migrate(pool)
        } catch {
            // Two processes opening a new catalog at once both find "v1" missing; the loser's
            // CREATE TABLE fails once the winner commits. Migrating again finds it applied.
            try migrator.migrate(pool)
        }
    }

    // MARK: Access

    // Both run in a task of their own: GRDB's async calls throw CancellationError in a
    // cancelled task, and a job being cancelled must still be able to record how it ended.

    /// Runs `body` on a snapshot of the catalog.
    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await Task { [pool] in try await pool.read(body) }.value
        } catch {
            throw Self.coffreError(error, path: path, busyTimeout: configuration.busyTimeout)
        }
    }

    /// Runs `body` in one `IMMEDIATE` transaction: the write lock is taken before the first
    /// read, so what `body` checks still holds when it writes, in any process.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await Task { [pool] in
                try await pool.writeWithoutTransaction { db in
                    var result: T?
                    try db.inTransaction(.immediate) {
                        result = try body(db)
                        return .commit
                    }
                    return result!
                }
            }.value
        } catch {
            throw Self.coffreError(error, path: path, busyTimeout: configuration.busyTimeout)
        }
    }

    /// What a failed database access means to the user. Domain errors and cancellation pass.
    static func coffreError(_ error: any Error, path: String, busyTimeout: TimeInterval) -> any Error {
        switch error {
        case is CoffreError, is CancellationError:
            return error
        case let error as UnreadableValue:
            return CoffreError.catalogUnreadable(path, reason: error.description)
        case let error as DatabaseError:
            let detail = error.message ?? "SQLite error \(error.resultCode.rawValue)"
            switch error.resultCode {
            case .SQLITE_NOTADB, .SQLITE_CORRUPT:
                return CoffreError.catalogUnreadable(path, reason: "it is not an intact SQLite database (\(detail))")
            case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_READONLY, .SQLITE_AUTH:
                return CoffreError.catalogUnreadable(path, reason: "it cannot be opened for writing (\(detail))")
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                return CoffreError.catalogBusy(path, seconds: busyTimeout)
            case .SQLITE_INTERRUPT:
                return CancellationError()
            default:
                return CoffreError.catalogFailed(path, detail: detail)
            }
        default:
            return CoffreError.catalogFailed(path, detail: String(describing: error))
        }
    }
}

extension PersistableRecord {
    /// Updates the row with this one's primary key; false when there is none.
    func updateIfPresent(_ db: Database) throws -> Bool {
        do {
            try update(db)
            return true
        } catch RecordError.recordNotFound {
            return false
        }
    }
}
