import CoffreCore
import Foundation
internal import GRDB

/// A row of `protected_items`; `(vmCloudService, vmName)` is unique: one item per VM.
struct ItemRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "protected_items"
    enum Columns {
        static let id = Column(CodingKeys.id)
        static let vmCloudService = Column(CodingKeys.vmCloudService)
        static let vmName = Column(CodingKeys.vmName)
    }

    var id: String
    var vmCloudService: String
    var vmName: String
    var policy: String
    var state: String
    var protectedAt: Double
    var lastScheduledSlot: Double?
    var lastVerificationSlot: Double?
    var softDeletedAt: Double?
    var purgeAfter: Double?

    init(_ item: ProtectedItem) {
        id = item.id
        vmCloudService = item.vm.cloudService
        vmName = item.vm.name
        policy = item.policy
        state = item.state.rawValue
        protectedAt = item.protectedAt.stored
        lastScheduledSlot = item.lastScheduledSlot?.stored
        lastVerificationSlot = item.lastVerificationSlot?.stored
        softDeletedAt = item.softDeletedAt?.stored
        purgeAfter = item.purgeAfter?.stored
    }

    func record() throws -> ProtectedItem {
        ProtectedItem(
            id: id, vm: VMKey(cloudService: vmCloudService, name: vmName), policy: policy,
            state: try decodeRaw(state, column: "protected_items.state"),
            protectedAt: Date(stored: protectedAt),
            lastScheduledSlot: lastScheduledSlot.map(Date.init(stored:)),
            lastVerificationSlot: lastVerificationSlot.map(Date.init(stored:)),
            softDeletedAt: softDeletedAt.map(Date.init(stored:)),
            purgeAfter: purgeAfter.map(Date.init(stored:)))
    }

    /// The item protecting `vm`.
    static func filter(vm: VMKey) -> QueryInterfaceRequest<ItemRow> {
        filter(Columns.vmCloudService == vm.cloudService && Columns.vmName == vm.name)
    }
}
