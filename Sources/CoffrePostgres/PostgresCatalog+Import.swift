public import CoffreCore
internal import PostgresNIO

extension PostgresCatalog: CatalogImporting {
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
