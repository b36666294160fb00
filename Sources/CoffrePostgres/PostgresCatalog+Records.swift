public import CoffreCore
public import Foundation
internal import Logging
internal import PostgresNIO

// The `Catalog` calls. Each is one statement or one transaction; what a check-then-write needs
// (one item per VM, one in-progress job per lock) is backed by a unique index, so two nodes
// racing can never both win.

extension PostgresCatalog {
    // MARK: Fabrics

    public func recordFabric(_ fabric: FabricRecord) async throws {
        try await withConnection { connection in try await Self.write(fabric, connection) }
    }

    static func write(_ fabric: FabricRecord, _ connection: PostgresConnection) async throws {
        let doc = try JSONColumn.encode(fabric)
        try await connection.rows("""
            INSERT INTO fabrics (name, doc) VALUES (\(fabric.name), \(doc))
            ON CONFLICT (name) DO UPDATE SET doc = EXCLUDED.doc
            """, logger: connection.logger)
    }

    public func fabrics() async throws -> [FabricRecord] {
        try await withConnection { connection in try await Self.fabrics(connection) }
    }

    static func fabrics(_ connection: PostgresConnection) async throws -> [FabricRecord] {
        try await connection.documents("SELECT doc FROM fabrics ORDER BY name", column: "fabrics.doc", logger: connection.logger)
    }

    // MARK: VMs

    public func applyDiscovery(fabric: String, vms: [DiscoveredVM], at date: Date) async throws -> DiscoveryChanges {
        try await transaction { [logger] connection in
            // Discoveries of one fabric from two nodes take turns: each sees the other's result.
            try await connection.rows("SELECT pg_advisory_xact_lock(hashtext(\("coffre.discovery." + fabric)))", logger: logger)
            let known: [VMRecord] = try await connection.documents(
                "SELECT doc FROM vms WHERE (fabric = \(fabric) AND presence = \(Presence.present.rawValue)) OR (cloud_service, name) IN (SELECT * FROM unnest(\(vms.map(\.key.cloudService))::text[], \(vms.map(\.key.name))::text[])) FOR UPDATE",
                column: "vms.doc", logger: logger)
            let byKey = Dictionary(known.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
            var changes = DiscoveryChanges()
            for vm in vms {
                if var record = byKey[vm.key] {
                    record.vm = vm
                    record.fabric = fabric
                    record.presence = .present
                    record.lastSeen = date
                    try await Self.upsert(record, connection)
                    changes.updated.append(vm.key)
                } else {
                    try await Self.upsert(VMRecord(vm: vm, fabric: fabric, firstSeen: date, lastSeen: date), connection)
                    changes.added.append(vm.key)
                }
            }
            let found = Set(vms.map(\.key))
            for var record in known where record.fabric == fabric && record.presence == .present && !found.contains(record.key) {
                record.presence = .vanished
                try await Self.upsert(record, connection)
                changes.vanished.append(record.key)
            }
            changes.vanished.sort()
            return changes
        }
    }

    public func vms() async throws -> [VMRecord] {
        try await withConnection { connection in try await Self.vms(connection) }
    }

    static func vms(_ connection: PostgresConnection) async throws -> [VMRecord] {
        try await connection.documents("SELECT doc FROM vms ORDER BY name, cloud_service", column: "vms.doc", logger: connection.logger)
    }

    public func vm(_ key: VMKey) async throws -> VMRecord? {
        try await withConnection { [logger] connection in
            try await connection.document(
                "SELECT doc FROM vms WHERE cloud_service = \(key.cloudService) AND name = \(key.name)",
                column: "vms.doc", logger: logger)
        }
    }

    public func updateVM(_ record: VMRecord) async throws {
        let doc = try JSONColumn.encode(record)
        let updated = try await withConnection { [logger] connection in
            try await connection.rows("""
                UPDATE vms SET fabric = \(record.fabric), presence = \(record.presence.rawValue), doc = \(doc)
                WHERE cloud_service = \(record.key.cloudService) AND name = \(record.key.name) RETURNING 1
                """, logger: logger).count
        }
        guard updated == 1 else { throw CoffreError.vmNotFound(record.key.description) }
    }

    static func upsert(_ record: VMRecord, _ connection: PostgresConnection) async throws {
        let doc = try JSONColumn.encode(record)
        try await connection.rows("""
            INSERT INTO vms (cloud_service, name, fabric, presence, doc)
            VALUES (\(record.key.cloudService), \(record.key.name), \(record.fabric), \(record.presence.rawValue), \(doc))
            ON CONFLICT (cloud_service, name) DO UPDATE
            SET fabric = EXCLUDED.fabric, presence = EXCLUDED.presence, doc = EXCLUDED.doc
            """, logger: connection.logger)
    }

    // MARK: Policies

    public func insertPolicy(_ policy: Policy) async throws {
        let inserted = try await withConnection { connection in try await Self.insert(policy, connection) }
        guard inserted else { throw CoffreError.policyAlreadyExists(policy.name) }
    }

    /// False when the name is taken.
    static func insert(_ policy: Policy, _ connection: PostgresConnection) async throws -> Bool {
        let doc = try JSONColumn.encode(policy)
        return try await connection.rows(
            "INSERT INTO policies (name, doc) VALUES (\(policy.name), \(doc)) ON CONFLICT DO NOTHING RETURNING 1",
            logger: connection.logger).count == 1
    }

    public func updatePolicy(_ policy: Policy) async throws {
        let doc = try JSONColumn.encode(policy)
        let updated = try await withConnection { [logger] connection in
            try await connection.rows("UPDATE policies SET doc = \(doc) WHERE name = \(policy.name) RETURNING 1", logger: logger).count
        }
        guard updated == 1 else { throw CoffreError.policyNotFound(policy.name) }
    }

    public func policies() async throws -> [Policy] {
        try await withConnection { connection in try await Self.policies(connection) }
    }

    static func policies(_ connection: PostgresConnection) async throws -> [Policy] {
        try await connection.documents("SELECT doc FROM policies ORDER BY name", column: "policies.doc", logger: connection.logger)
    }

    public func policy(named name: String) async throws -> Policy? {
        try await withConnection { [logger] connection in
            try await connection.document("SELECT doc FROM policies WHERE name = \(name)", column: "policies.doc", logger: logger)
        }
    }

    // MARK: Protected items

    public func items() async throws -> [ProtectedItem] {
        try await withConnection { connection in try await Self.items(connection) }
    }

    static func items(_ connection: PostgresConnection) async throws -> [ProtectedItem] {
        try await connection.documents(
            "SELECT doc FROM protected_items ORDER BY vm_name, vm_cloud_service", column: "protected_items.doc",
            logger: connection.logger)
    }

    public func item(for vm: VMKey) async throws -> ProtectedItem? {
        try await withConnection { [logger] connection in
            try await connection.document(
                "SELECT doc FROM protected_items WHERE vm_cloud_service = \(vm.cloudService) AND vm_name = \(vm.name)",
                column: "protected_items.doc", logger: logger)
        }
    }

    public func item(id: String) async throws -> ProtectedItem? {
        try await withConnection { [logger] connection in
            try await connection.document(
                "SELECT doc FROM protected_items WHERE id = \(id)", column: "protected_items.doc", logger: logger)
        }
    }

    public func saveItem(_ item: ProtectedItem) async throws {
        try await savingItem(item) {
            try await self.transaction { connection in try await Self.save(item, connection) }
        }
    }

    public func deleteItem(id: String) async throws {
        // The item's points go with it: ON DELETE CASCADE.
        try await withConnection { [logger] connection in
            try await connection.rows("DELETE FROM protected_items WHERE id = \(id)", logger: logger)
        }
    }

    public func recordVerificationSlot(_ slot: Date, item id: String) async throws {
        try await transaction { connection in
            let stored: [ProtectedItem] = try await connection.documents(
                "SELECT doc FROM protected_items WHERE id = \(id) FOR UPDATE", column: "protected_items.doc",
                logger: connection.logger)
            guard var item = stored.first else { return }
            item.lastVerificationSlot = slot
            let doc = try JSONColumn.encode(item)
            try await connection.rows("UPDATE protected_items SET doc = \(doc) WHERE id = \(id)", logger: connection.logger)
        }
    }

    /// Inserts or updates `item` by id (an update, never a delete and insert, which would
    /// cascade to its points).
    /// - Throws: `AlreadyProtected` when another item holds the VM.
    static func save(_ item: ProtectedItem, _ connection: PostgresConnection) async throws {
        let doc = try JSONColumn.encode(item)
        let holders: [ProtectedItem] = try await connection.documents("""
            SELECT doc FROM protected_items
            WHERE vm_cloud_service = \(item.vm.cloudService) AND vm_name = \(item.vm.name) AND id <> \(item.id)
            """, column: "protected_items.doc", logger: connection.logger)
        if let holder = holders.first { throw CoffreError.alreadyProtected(item.vm, policy: holder.policy) }
        do {
            try await connection.rows("""
                INSERT INTO protected_items (id, vm_cloud_service, vm_name, doc)
                VALUES (\(item.id), \(item.vm.cloudService), \(item.vm.name), \(doc))
                ON CONFLICT (id) DO UPDATE
                SET vm_cloud_service = EXCLUDED.vm_cloud_service, vm_name = EXCLUDED.vm_name, doc = EXCLUDED.doc
                """, logger: connection.logger)
        } catch let error as PSQLError where error.serverInfo?[.constraintName] == "protected_items_vm" {
            // Another node protected the VM between the check and the insert.
            throw ItemVMTaken()
        }
    }

    /// Runs `save`, turning a VM protected by another node meanwhile into `AlreadyProtected`
    /// (its policy read once the failed transaction is over).
    private func savingItem(_ item: ProtectedItem, _ save: () async throws -> Void) async throws {
        do {
            try await save()
        } catch is ItemVMTaken {
            throw CoffreError.alreadyProtected(item.vm, policy: try await self.item(for: item.vm)?.policy ?? "another policy")
        }
    }

    // MARK: Recovery points

    public func commitPoint(_ point: RecoveryPointRecord, item: ProtectedItem, job: Job?) async throws {
        try await savingItem(item) { try await self.transaction { connection in
            // The job's row stays locked to the end: recovery cannot mark it interrupted
            // between this check and the commit.
            if let job { try job.checkRunning(stored: try await Self.lease(of: job.id, lock: true, connection)) }
            try await Self.save(item, connection)
            try await Self.write(point, connection)
        } }
    }

    static func write(_ point: RecoveryPointRecord, _ connection: PostgresConnection) async throws {
        let doc = try JSONColumn.encode(point)
        let verification = try point.verification.map(JSONColumn.encode)
        try await connection.rows("""
            INSERT INTO recovery_points (id, item, taken_at, definition, verification, doc)
            VALUES (\(point.id), \(point.item), \(point.takenAt.timeIntervalSinceReferenceDate), \(point.definition),
                    \(verification), \(doc))
            ON CONFLICT (id) DO UPDATE
            SET item = EXCLUDED.item, taken_at = EXCLUDED.taken_at, definition = EXCLUDED.definition,
                verification = EXCLUDED.verification, doc = EXCLUDED.doc
            """, logger: connection.logger)
    }

    public func points(item: String) async throws -> [RecoveryPointRecord] {
        try await withConnection { [logger] connection in
            try await Self.points(
                "SELECT doc, definition, verification FROM recovery_points WHERE item = \(item) ORDER BY taken_at, id",
                connection, logger: logger)
        }
    }

    public func point(id: String) async throws -> RecoveryPointRecord? {
        try await withConnection { [logger] connection in
            try await Self.points(
                "SELECT doc, definition, verification FROM recovery_points WHERE id = \(id)", connection, logger: logger).first
        }
    }

    public func updatePoints(_ points: [RecoveryPointRecord]) async throws {
        // A point deleted meanwhile (cleanup on another node) stays deleted; the verification
        // is recordVerification's alone: a copy read earlier never overwrites it.
        let rows = try points.map { (id: $0.id, definition: $0.definition, doc: try JSONColumn.encode($0)) }
        try await transaction { connection in
            for row in rows {
                try await connection.rows(
                    "UPDATE recovery_points SET definition = \(row.definition), doc = \(row.doc) WHERE id = \(row.id)",
                    logger: connection.logger)
            }
        }
    }

    public func recordVerification(_ verification: PointVerification, point id: String) async throws {
        let json = try JSONColumn.encode(verification)
        try await withConnection { [logger] connection in
            try await connection.rows("UPDATE recovery_points SET verification = \(json) WHERE id = \(id)", logger: logger)
        }
    }

    public func deletePoints(ids: [String]) async throws {
        try await withConnection { [logger] connection in
            try await connection.rows("DELETE FROM recovery_points WHERE id = ANY(\(ids))", logger: logger)
        }
    }

    static func points(
        _ query: PostgresQuery, _ connection: PostgresConnection, logger: Logger
    ) async throws -> [RecoveryPointRecord] {
        try await connection.rows(query, logger: logger).map { row in
            let (doc, definition, verification) = try row.decode((String, String?, String?).self)
            var point: RecoveryPointRecord = try JSONColumn.decode(doc, column: "recovery_points.doc")
            point.definition = definition
            point.verification = try verification.map { try JSONColumn.decode($0, column: "recovery_points.verification") }
            return point
        }
    }
}
