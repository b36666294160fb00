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
            snapshot.fabrics = try await Self.fabrics(connection)
            snapshot.vms = try await Self.vms(connection)
            snapshot.policies = try await Self.policies(connection)
            snapshot.items = try await Self.items(connection)
            // Every point belongs to an item (a foreign key): one query, then the items' order.
            snapshot.points = try await Self.points(
                "SELECT doc, definition, verification FROM recovery_points", connection, logger: logger)
            snapshot.orderPointsByItem()
            snapshot.jobs = try await Self.jobs(JobFilter(), connection)
            snapshot.tokens = try await Self.tokens(connection)
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
