import CoffreCore
internal import Logging
internal import PostgresNIO

/// The catalog's tables in PostgreSQL, built by numbered migrations.
///
/// **A migration that has shipped is never edited**: a change is a new migration at the end.
/// Dates are `double precision` seconds since 2001-01-01 UTC (`Date`'s own value, exact both
/// ways; `to_timestamp(x + 978307200)` reads one); `doc` columns hold the record as JSON text.
/// Names are compared and ordered byte by byte (`COLLATE "C"`), as the other catalogs do,
/// whatever the database's locale.
enum PostgresSchema {
    struct Migration {
        var version: Int
        var name: String
        var statements: [PostgresQuery]
    }

    static let migrations: [Migration] = [
        Migration(version: 1, name: "catalog", statements: [
            """
            CREATE TABLE fabrics (
                name text COLLATE "C" PRIMARY KEY,
                doc text NOT NULL)
            """,
            """
            CREATE TABLE vms (
                cloud_service text COLLATE "C" NOT NULL,
                name text COLLATE "C" NOT NULL,
                fabric text COLLATE "C" NOT NULL,
                presence text NOT NULL,
                doc text NOT NULL,
                PRIMARY KEY (cloud_service, name))
            """,
            "CREATE INDEX vms_fabric ON vms (fabric, presence)",
            """
            CREATE TABLE policies (
                name text COLLATE "C" PRIMARY KEY,
                doc text NOT NULL)
            """,
            """
            CREATE TABLE protected_items (
                id text COLLATE "C" PRIMARY KEY,
                vm_cloud_service text COLLATE "C" NOT NULL,
                vm_name text COLLATE "C" NOT NULL,
                doc text NOT NULL,
                CONSTRAINT protected_items_vm UNIQUE (vm_cloud_service, vm_name))
            """,
            """
            CREATE TABLE jobs (
                id text COLLATE "C" PRIMARY KEY,
                type text NOT NULL,
                status text NOT NULL,
                vm_cloud_service text COLLATE "C",
                vm_name text COLLATE "C",
                started_at double precision NOT NULL,
                lock text COLLATE "C",
                cancel_requested boolean NOT NULL,
                doc text NOT NULL)
            """,
            "CREATE INDEX jobs_status_started_at ON jobs (status, started_at)",
            "CREATE INDEX jobs_vm ON jobs (vm_cloud_service, vm_name, started_at)",
            "CREATE INDEX jobs_started_at ON jobs (started_at DESC, id DESC)",
            // At most one in-progress job per lock (one operation per item, B6), across nodes.
            "CREATE UNIQUE INDEX jobs_lock ON jobs (lock) WHERE status = 'InProgress' AND lock IS NOT NULL",
            """
            CREATE TABLE recovery_points (
                id text COLLATE "C" PRIMARY KEY,
                item text COLLATE "C" NOT NULL REFERENCES protected_items (id) ON DELETE CASCADE,
                taken_at double precision NOT NULL,
                definition text,
                verification text,
                doc text NOT NULL)
            """,
            "CREATE INDEX recovery_points_item_taken_at ON recovery_points (item, taken_at, id)",
        ]),
        Migration(version: 2, name: "nodes and leader", statements: [
            // Times here are the database's (now()), never a node's.
            """
            CREATE TABLE nodes (
                id text COLLATE "C" PRIMARY KEY,
                address text NOT NULL,
                version text NOT NULL,
                started_at timestamptz NOT NULL,
                heartbeat_at timestamptz NOT NULL,
                running_jobs integer NOT NULL)
            """,
            // One row: the leader lease. `term` grows each time the lease changes hands.
            """
            CREATE TABLE leader (
                id integer PRIMARY KEY CHECK (id = 1),
                node text COLLATE "C" NOT NULL,
                term bigint NOT NULL,
                expires_at timestamptz NOT NULL)
            """,
        ]),
        Migration(version: 3, name: "job queue", statements: [
            // Who runs a job and on which fabric, as columns: the lease's check and the
            // per-fabric count of a claim read them.
            "ALTER TABLE jobs ADD COLUMN owner text COLLATE \"C\"",
            "ALTER TABLE jobs ADD COLUMN fabric text COLLATE \"C\"",
            "UPDATE jobs SET owner = doc::json->>'owner', fabric = doc::json->'details'->>'fabric'",
            "ALTER TABLE jobs ALTER COLUMN owner SET NOT NULL",
            // A queued job holds its item's lock as an in-progress one does (B6 across the queue).
            "DROP INDEX jobs_lock",
            "CREATE UNIQUE INDEX jobs_lock ON jobs (lock) WHERE status IN ('Queued', 'InProgress') AND lock IS NOT NULL",
            "CREATE INDEX jobs_queue ON jobs (type, started_at, id) WHERE status = 'Queued'",
            "CREATE INDEX jobs_running_fabric ON jobs (type, fabric) WHERE status = 'InProgress'",
        ]),
        Migration(version: 4, name: "api tokens", statements: [
            // Only each token's SHA-256: every node accepts every token.
            """
            CREATE TABLE api_tokens (
                hash text COLLATE "C" PRIMARY KEY,
                name text NOT NULL,
                role text NOT NULL,
                created_at double precision NOT NULL)
            """,
        ]),
        Migration(version: 5, name: "clients heartbeat", statements: [
            // Command-line processes heartbeat too, so that the leader sees them die; they are
            // not nodes (not listed, never lead).
            "ALTER TABLE nodes ADD COLUMN kind text NOT NULL DEFAULT 'node'",
        ]),
        Migration(version: 6, name: "vault samples", statements: [
            // One measure of the vault per UTC day, for the dashboard's storage chart.
            """
            CREATE TABLE vault_samples (
                day text COLLATE "C" PRIMARY KEY,
                taken_at double precision NOT NULL,
                stored_bytes bigint NOT NULL,
                logical_bytes bigint NOT NULL)
            """,
        ]),
    ]

    /// Applies the migrations the database lacks, each in its own transaction. The table of
    /// applied migrations is locked first, so that nodes starting at once wait for each other
    /// instead of applying one twice (a table lock holds behind a transaction-mode pooler,
    /// where an advisory lock of one connection would not).
    /// - Throws: `VaultFormatUnsupported` when a newer Coffre applied migrations this one does
    ///   not know.
    static func migrate(_ catalog: PostgresCatalog) async throws {
        let location = catalog.location
        let logger = catalog.logger
        let create: @Sendable (PostgresConnection) async throws -> Void = { connection in
            try await connection.rows("""
                CREATE TABLE IF NOT EXISTS coffre_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
        }
        do {
            try await catalog.withConnection(create)
        } catch let error as CoffreError where error.code == .catalogFailed {
            // Two nodes creating the table at once: IF NOT EXISTS does not cover the loser
            // (a duplicate key of pg_type); the second attempt finds the table.
            try await catalog.withConnection(create)
        }
        for migration in migrations {
            try await catalog.transaction { connection in
                try await connection.rows("LOCK TABLE coffre_migrations IN EXCLUSIVE MODE", logger: logger)
                let applied = try await connection.rows("SELECT version FROM coffre_migrations", logger: logger)
                    .map { try $0.decode(Int.self) }
                if let newest = applied.max(), newest > migrations.last!.version {
                    throw CoffreError.vaultFormatUnsupported(
                        "the catalog \(location) was migrated by a newer version of Coffre (migration \(newest))")
                }
                guard !applied.contains(migration.version) else { return }
                for statement in migration.statements { try await connection.rows(statement, logger: logger) }
                try await connection.rows(
                    "INSERT INTO coffre_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                    logger: logger)
            }
        }
    }
}

extension PostgresCatalog {
    func migrate() async throws {
        try await PostgresSchema.migrate(self)
    }
}
