public import CoffreCore
import Foundation
internal import GRDB

extension SQLiteCatalog: CatalogImporting {
    /// Every record, read in one transaction: a consistent view even while other processes write
    /// (WAL: readers see the last commit before their first read).
    public func snapshot() async throws -> CatalogSnapshot {
        try await read { db in
            var snapshot = CatalogSnapshot()
            snapshot.fabrics = try Self.fabrics(db)
            snapshot.vms = try Self.vms(db)
            snapshot.policies = try Self.policies(db)
            snapshot.items = try Self.items(db)
            for item in snapshot.items { snapshot.points += try Self.points(item: item.id, db) }
            snapshot.jobs = try Self.jobs(JobFilter(), db)
            snapshot.tokens = try Self.tokens(db)
            return snapshot
        }
    }

    /// Writes every record of `snapshot` in one IMMEDIATE transaction, after checking in it that
    /// the catalog holds nothing: a failure leaves the file as it was.
    public func importSnapshot(_ snapshot: CatalogSnapshot) async throws {
        let path = path
        try await write { db in
            let tables = [("fabrics", "fabrics"), ("VMs", "vms"), ("policies", "policies"),
                          ("protected items", "protected_items"), ("recovery points", "recovery_points"),
                          ("jobs", "jobs"), ("API tokens", "api_tokens")]
            let counts = try tables.map { kind, table in
                (kind: kind, count: try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? 0)
            }
            guard counts.allSatisfy({ $0.count == 0 }) else { throw CoffreError.catalogNotEmpty(path, counts: counts) }
            for fabric in snapshot.fabrics { try FabricRow(fabric).insert(db) }
            for vm in snapshot.vms { try VMRow(vm).insert(db) }
            for policy in snapshot.policies { try PolicyRow(policy).insert(db) }
            for item in snapshot.items { try ItemRow(item).insert(db) }
            for point in snapshot.points { try PointRow(point).insert(db) }
            // A job's lock matters only while it runs; an import holds no running job.
            for job in snapshot.jobs { try JobRow(job, lock: nil).insert(db) }
            for token in snapshot.tokens { try Self.insert(token, db) }
        }
    }
}

extension SQLiteCatalog {
    // MARK: History

    public func recordVaultSample(_ sample: VaultSample, keepingDays: Int) async throws {
        let oldest = VaultSample.oldestDayKept(by: sample, keepingDays: keepingDays)
        try await write { db in
            try db.execute(sql: """
                INSERT INTO vault_samples (day, takenAt, storedBytes, logicalBytes) VALUES (?, ?, ?, ?)
                ON CONFLICT (day) DO UPDATE SET takenAt = excluded.takenAt, storedBytes = excluded.storedBytes,
                    logicalBytes = excluded.logicalBytes
                """, arguments: [sample.day, sample.takenAt.stored, sample.storedBytes, sample.logicalBytes])
            try db.execute(sql: "DELETE FROM vault_samples WHERE day < ?", arguments: [oldest])
        }
    }

    public func vaultSamples() async throws -> [VaultSample] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM vault_samples ORDER BY day").map { row in
                VaultSample(day: row["day"], takenAt: Date(stored: row["takenAt"]), storedBytes: row["storedBytes"],
                            logicalBytes: row["logicalBytes"])
            }
        }
    }
}
