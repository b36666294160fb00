public import CoffreCore
public import Foundation
internal import GRDB

extension SQLiteCatalog {
    // MARK: Fabrics

    public func recordFabric(_ fabric: FabricRecord) async throws {
        try await write { db in try FabricRow(fabric).save(db) }
    }

    public func fabrics() async throws -> [FabricRecord] {
        try await read(Self.fabrics)
    }

    static func fabrics(_ db: Database) throws -> [FabricRecord] {
        try FabricRow.order(FabricRow.Columns.name).fetchAll(db).map(\.record)
    }

    // MARK: VMs

    public func applyDiscovery(fabric: String, vms: [DiscoveredVM], at date: Date) async throws -> DiscoveryChanges {
        try await write { db in
            var changes = DiscoveryChanges()
            for vm in vms {
                if var record = try VMRow.fetchOne(db, key: VMRow.key(vm.key))?.record() {
                    record.vm = vm
                    record.fabric = fabric
                    record.presence = .present
                    record.lastSeen = date
                    try VMRow(record).update(db)
                    changes.updated.append(vm.key)
                } else {
                    try VMRow(VMRecord(vm: vm, fabric: fabric, firstSeen: date, lastSeen: date)).insert(db)
                    changes.added.append(vm.key)
                }
            }
            let found = Set(vms.map(\.key))
            let present = VMRow.filter(VMRow.Columns.fabric == fabric && VMRow.Columns.presence == Presence.present.rawValue)
            for var record in try present.fetchAll(db).map({ try $0.record() }) where !found.contains(record.key) {
                record.presence = .vanished
                try VMRow(record).update(db)
                changes.vanished.append(record.key)
            }
            changes.vanished.sort()
            return changes
        }
    }

    public func vms() async throws -> [VMRecord] {
        try await read(Self.vms)
    }

    static func vms(_ db: Database) throws -> [VMRecord] {
        try VMRow.order(VMRow.Columns.name, VMRow.Columns.cloudService).fetchAll(db).map { try $0.record() }
    }

    public func vm(_ key: VMKey) async throws -> VMRecord? {
        try await read { db in try VMRow.fetchOne(db, key: VMRow.key(key))?.record() }
    }

    public func updateVM(_ record: VMRecord) async throws {
        try await write { db in
            guard try VMRow(record).updateIfPresent(db) else { throw CoffreError.vmNotFound(record.key.description) }
        }
    }
}
