import CoffreCore
import Foundation
internal import GRDB

/// A row of `recovery_points`; deleting its item deletes it (foreign key, ON DELETE CASCADE).
struct PointRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "recovery_points"
    enum Columns {
        static let id = Column(CodingKeys.id)
        static let item = Column(CodingKeys.item)
        static let takenAt = Column(CodingKeys.takenAt)
    }

    var id: String
    var item: String
    var vmCloudService: String
    var vmName: String
    var takenAt: Double
    var type: String
    var consistency: String
    /// JSON `[RetentionTag]`.
    var tags: String
    var expiresAt: Double?
    var retainUntil: Double?
    /// JSON `[VirtualDisk]`.
    var disks: String
    var bytesRead: Int64
    var bytesWritten: Int64
    var blocksAdded: Int
    var blocksChanged: Int
    var seconds: Double
    /// JSON `GuestOutcome`.
    var guest: String
    var job: String
    /// JSON `ChangeTracking`, or NULL.
    var changes: String?
    /// The fabric's description of the VM, or NULL.
    var definition: String?
    /// JSON `PointVerification`, or NULL when never verified.
    var verification: String?

    init(_ point: RecoveryPointRecord) throws {
        id = point.id
        item = point.item
        vmCloudService = point.vm.cloudService
        vmName = point.vm.name
        takenAt = point.takenAt.stored
        type = point.type.rawValue
        consistency = point.consistency.rawValue
        tags = try JSONColumn.encode(point.tags)
        expiresAt = point.expiresAt?.stored
        retainUntil = point.retainUntil?.stored
        disks = try JSONColumn.encode(point.disks)
        bytesRead = point.stats.bytesRead
        bytesWritten = point.stats.bytesWritten
        blocksAdded = point.stats.blocksAdded
        blocksChanged = point.stats.blocksChanged
        seconds = point.stats.seconds
        guest = try JSONColumn.encode(point.guest)
        job = point.job
        changes = try point.changes.map { try JSONColumn.encode($0) }
        definition = point.definition
        verification = try point.verification.map { try JSONColumn.encode($0) }
    }

    func record() throws -> RecoveryPointRecord {
        RecoveryPointRecord(
            id: id, item: item, vm: VMKey(cloudService: vmCloudService, name: vmName),
            takenAt: Date(stored: takenAt),
            type: try decodeRaw(type, column: "recovery_points.type"),
            consistency: try decodeRaw(consistency, column: "recovery_points.consistency"),
            tags: try JSONColumn.decode(tags, column: "recovery_points.tags"),
            expiresAt: expiresAt.map(Date.init(stored:)), retainUntil: retainUntil.map(Date.init(stored:)),
            disks: try JSONColumn.decode(disks, column: "recovery_points.disks"),
            stats: PointStats(bytesRead: bytesRead, bytesWritten: bytesWritten, blocksAdded: blocksAdded,
                              blocksChanged: blocksChanged, seconds: seconds),
            guest: try JSONColumn.decode(guest, column: "recovery_points.guest"),
            job: job,
            changes: try changes.map { try JSONColumn.decode($0, column: "recovery_points.changes") },
            definition: definition,
            verification: try verification.map { try JSONColumn.decode($0, column: "recovery_points.verification") })
    }
}
