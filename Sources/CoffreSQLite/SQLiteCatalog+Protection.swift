public import CoffreCore
public import Foundation
internal import GRDB

extension SQLiteCatalog {
    // MARK: Policies

    public func insertPolicy(_ policy: Policy) async throws {
        try await write { db in
            guard try !PolicyRow.exists(db, key: policy.name) else { throw CoffreError.policyAlreadyExists(policy.name) }
            try PolicyRow(policy).insert(db)
        }
    }

    public func updatePolicy(_ policy: Policy) async throws {
        try await write { db in
            guard try PolicyRow(policy).updateIfPresent(db) else { throw CoffreError.policyNotFound(policy.name) }
        }
    }

    public func policies() async throws -> [Policy] {
        try await read(Self.policies)
    }

    static func policies(_ db: Database) throws -> [Policy] {
        try PolicyRow.order(PolicyRow.Columns.name).fetchAll(db).map { try $0.record() }
    }

    public func policy(named name: String) async throws -> Policy? {
        try await read { db in try PolicyRow.fetchOne(db, key: name)?.record() }
    }

    // MARK: Protected items

    public func items() async throws -> [ProtectedItem] {
        try await read(Self.items)
    }

    static func items(_ db: Database) throws -> [ProtectedItem] {
        try ItemRow.order(ItemRow.Columns.vmName, ItemRow.Columns.vmCloudService).fetchAll(db).map { try $0.record() }
    }

    public func item(for vm: VMKey) async throws -> ProtectedItem? {
        try await read { db in try ItemRow.filter(vm: vm).fetchOne(db)?.record() }
    }

    public func item(id: String) async throws -> ProtectedItem? {
        try await read { db in try ItemRow.fetchOne(db, key: id)?.record() }
    }

    public func saveItem(_ item: ProtectedItem) async throws {
        try await write { db in try Self.save(item, db) }
    }

    public func deleteItem(id: String) async throws {
        // The item's points go with it: ON DELETE CASCADE.
        try await write { db in _ = try ItemRow.deleteOne(db, key: id) }
    }

    /// Inserts or updates `item` (never REPLACE, which would delete it and cascade to its points).
    private static func save(_ item: ProtectedItem, _ db: Database) throws {
        if let holder = try ItemRow.filter(vm: item.vm).fetchOne(db), holder.id != item.id {
            throw CoffreError.alreadyProtected(item.vm, policy: holder.policy)
        }
        try ItemRow(item).save(db)
    }

    // MARK: Recovery points

    public func commitPoint(_ point: RecoveryPointRecord, item: ProtectedItem, job: Job?) async throws {
        try await write { db in
            if let job { try job.checkRunning(stored: try JobRow.fetchOne(db, key: job.id)?.lease) }
            try Self.save(item, db)
            try PointRow(point).save(db)
        }
    }

    public func points(item: String) async throws -> [RecoveryPointRecord] {
        try await read { db in try Self.points(item: item, db) }
    }

    static func points(item: String, _ db: Database) throws -> [RecoveryPointRecord] {
        try PointRow.filter(PointRow.Columns.item == item)
            .order(PointRow.Columns.takenAt, PointRow.Columns.id)
            .fetchAll(db).map { try $0.record() }
    }

    public func point(id: String) async throws -> RecoveryPointRecord? {
        try await read { db in try PointRow.fetchOne(db, key: id)?.record() }
    }

    public func updatePoints(_ points: [RecoveryPointRecord]) async throws {
        // A point deleted meanwhile (cleanup in another process) stays deleted.
        try await write { db in
            for point in points {
                var row = try PointRow(point)
                // The verification is recordVerification's alone: a copy read earlier never overwrites it.
                row.verification = try String.fetchOne(
                    db, sql: "SELECT verification FROM recovery_points WHERE id = ?", arguments: [point.id])
                _ = try row.updateIfPresent(db)
            }
        }
    }

    public func recordVerificationSlot(_ slot: Date, item id: String) async throws {
        try await write { db in
            try db.execute(sql: "UPDATE protected_items SET lastVerificationSlot = ? WHERE id = ?", arguments: [slot.stored, id])
        }
    }

    public func recordVerification(_ verification: PointVerification, point id: String) async throws {
        let json = try JSONColumn.encode(verification)
        try await write { db in
            try db.execute(sql: "UPDATE recovery_points SET verification = ? WHERE id = ?", arguments: [json, id])
        }
    }

    public func deletePoints(ids: [String]) async throws {
        try await write { db in _ = try PointRow.deleteAll(db, keys: ids) }
    }
}
