public import CoffreCore
internal import PostgresNIO
import Foundation

extension PostgresCatalog: CatalogImporting {
    /// Every record, read in one REPEATABLE READ transaction: one consistent view of the
    /// database while other nodes write.
    public func snapshot() async throws -> CatalogSnapshot {
        try await transaction { connection in
            let logger = connection.logger
            try await connection.rows("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
            var snapshot = CatalogSnapshot()
            snapshot.fabrics = try await connection.documents("SELECT doc FROM fabrics ORDER BY name", column: "fabrics.doc", logger: logger)
            snapshot.vms = try await connection.documents("SELECT doc FROM vms ORDER BY name, cloud_service", column: "vms.doc", logger: logger)
            snapshot.policies = try await connection.documents("SELECT doc FROM policies ORDER BY name", column: "policies.doc", logger: logger)
            snapshot.items = try await connection.documents(
                "SELECT doc FROM protected_items ORDER BY vm_name, vm_cloud_service", column: "protected_items.doc", logger: logger)
            let order = Dictionary(snapshot.items.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
            snapshot.points = try await Self.points(
                "SELECT doc, definition, verification FROM recovery_points ORDER BY taken_at, id", connection, logger: logger)
                .filter { order[$0.item] != nil }
            // Per item in the items' order, oldest first (as `points(item:)` lists them).
            snapshot.points.sort { (order[$0.item]!, $0.takenAt, $0.id) < (order[$1.item]!, $1.takenAt, $1.id) }
            snapshot.jobs = try await Self.jobs(
                "SELECT doc, cancel_requested FROM jobs ORDER BY started_at DESC, id DESC", connection, logger: logger)
            snapshot.tokens = try await connection.rows(
                "SELECT name, role, hash, created_at FROM api_tokens ORDER BY created_at, hash", logger: logger).map(Self.token)
            return snapshot
        }
    }

    /// Writes every record of `snapshot` in one transaction, after checking under a lock of
    /// every table that the catalog is empty: two migrations into one database cannot both
    /// copy, and a failure leaves the database as it was.
    public func importSnapshot(_ snapshot: CatalogSnapshot) async throws {
        let location = location
        try await transaction { connection in
            try await connection.rows(
                "LOCK TABLE fabrics, vms, policies, protected_items, jobs, recovery_points, api_tokens IN EXCLUSIVE MODE",
                logger: connection.logger)
            let held = try await connection.rows("""
                SELECT (SELECT count(*) FROM fabrics), (SELECT count(*) FROM vms), (SELECT count(*) FROM policies),
                       (SELECT count(*) FROM protected_items), (SELECT count(*) FROM recovery_points),
                       (SELECT count(*) FROM jobs), (SELECT count(*) FROM api_tokens)
                """, logger: connection.logger)
            let (fabrics, vms, policies, items, points, jobs, tokens) = try held[0].decode((Int, Int, Int, Int, Int, Int, Int).self)
            let counts = [("fabrics", fabrics), ("VMs", vms), ("policies", policies), ("protected items", items),
                          ("recovery points", points), ("jobs", jobs), ("API tokens", tokens)]
            guard counts.allSatisfy({ $0.1 == 0 }) else {
                throw CoffreError.catalogNotEmpty(location, counts: counts.map { (kind: $0.0, count: $0.1) })
            }
            for fabric in snapshot.fabrics { try await Self.write(fabric, connection) }
            for vm in snapshot.vms { try await Self.upsert(vm, connection) }
            for policy in snapshot.policies { _ = try await Self.insert(policy, connection) }
            for item in snapshot.items { try await Self.save(item, connection) }
            for point in snapshot.points { try await Self.write(point, connection) }
            // A job's lock matters only while it runs; the migration copies no running job.
            for job in snapshot.jobs { _ = try await Self.insert(job, lock: nil, connection) }
            for token in snapshot.tokens { try await Self.insert(token, connection) }
        }
    }
}

extension PostgresCatalog {
    // MARK: History

    public func recordVaultSample(_ sample: VaultSample, keepingDays: Int) async throws {
        let oldest = VaultSample.oldestDayKept(by: sample, keepingDays: keepingDays)
        try await transaction { connection in
            try await connection.rows("""
                INSERT INTO vault_samples (day, taken_at, stored_bytes, logical_bytes)
                VALUES (\(sample.day), \(sample.takenAt.timeIntervalSinceReferenceDate), \(sample.storedBytes), \(sample.logicalBytes))
                ON CONFLICT (day) DO UPDATE SET taken_at = EXCLUDED.taken_at, stored_bytes = EXCLUDED.stored_bytes,
                    logical_bytes = EXCLUDED.logical_bytes
                """, logger: connection.logger)
            try await connection.rows("DELETE FROM vault_samples WHERE day < \(oldest)", logger: connection.logger)
        }
    }

    public func vaultSamples() async throws -> [VaultSample] {
        try await withConnection { [logger] connection in
            try await connection.rows("SELECT day, taken_at, stored_bytes, logical_bytes FROM vault_samples ORDER BY day",
                                      logger: logger).map { row in
                let (day, taken, stored, logical) = try row.decode((String, Double, Int64, Int64).self)
                return VaultSample(day: day, takenAt: Date(timeIntervalSinceReferenceDate: taken), storedBytes: stored,
                                   logicalBytes: logical)
            }
        }
    }
}
