public import Foundation

/// Where a protected item stands (P4, K4).
public enum ProtectionState: String, Codable, Sendable {
    /// A ConfigureProtection job is binding the VM to its policy.
    case configuring
    /// Backed up on the policy's schedule; *pending initial backup* until its first point exists.
    case protected
    /// Stop protection, retain data: no backups, points kept forever and restorable.
    case stopped
    /// Stop protection, delete data: points kept until `purgeAfter`, restorable only after undelete.
    case softDeleted
}

/// A VM bound to a policy, and the name its points carry in the point store.
public struct ProtectedItem: Codable, Sendable, Equatable {
    /// The item's name in the point store (valid for `Naming`), stable for the item's life.
    public var id: String
    public var vm: VMKey
    /// The policy; kept while protection is stopped so that resume can re-apply it.
    public var policy: String
    public var state: ProtectionState
    public var protectedAt: Date
    /// The last schedule slot a Backup job was created for (missed slots run once, P5).
    public var lastScheduledSlot: Date?
    /// The last slot of the policy's verification schedule a Verify job was created for.
    public var lastVerificationSlot: Date?
    public var softDeletedAt: Date?
    /// When a soft-deleted item's points are purged for good.
    public var purgeAfter: Date?

    public init(
        id: String, vm: VMKey, policy: String, state: ProtectionState, protectedAt: Date,
        lastScheduledSlot: Date? = nil, lastVerificationSlot: Date? = nil, softDeletedAt: Date? = nil, purgeAfter: Date? = nil
    ) {
        self.lastVerificationSlot = lastVerificationSlot
        self.id = id
        self.vm = vm
        self.policy = policy
        self.state = state
        self.protectedAt = protectedAt
        self.lastScheduledSlot = lastScheduledSlot
        self.softDeletedAt = softDeletedAt
        self.purgeAfter = purgeAfter
    }
}

/// Whether a point was made by the schedule or on demand (B5).
public enum PointType: String, Codable, Sendable {
    case scheduled
    case onDemand
}

/// A recovery point as the catalog knows it; its bytes are in the point store under `id`.
public struct RecoveryPointRecord: Codable, Sendable, Equatable {
    /// The point store's id for it.
    public var id: String
    /// The protected item's id.
    public var item: String
    public var vm: VMKey
    /// When the snapshot was taken.
    public var takenAt: Date
    public var type: PointType
    public var consistency: Consistency
    /// Long-term retention earned when committed (scheduled points only).
    public var tags: [RetentionTag]
    /// When cleanup removes it; nil = kept until someone decides otherwise.
    public var expiresAt: Date?
    /// An on-demand point's own retention date.
    public var retainUntil: Date?
    public var disks: [VirtualDisk]
    public var stats: PointStats
    /// What happened in the guest (C2).
    public var guest: GuestOutcome
    /// The Backup job that made it.
    public var job: String
    /// Changed-block tracking: the fabric's marker and whether only changes were read.
    public var changes: ChangeTracking?
    /// The VM's configuration as the fabric gave it with the snapshot (`FabricSnapshot.definition`).
    /// Kept by the catalog for restores, but not encoded: it is the fabric's business, can be
    /// kilobytes long, and has no place in every listing of points.
    public var definition: String?
    /// The point's latest verification (Verify job); nil: never verified.
    public var verification: PointVerification?

    private enum CodingKeys: String, CodingKey {
        case id, item, vm, takenAt, type, consistency, tags, expiresAt, retainUntil, disks, stats, guest, job, changes,
             verification
    }

    public init(
        id: String, item: String, vm: VMKey, takenAt: Date, type: PointType, consistency: Consistency,
        tags: [RetentionTag] = [], expiresAt: Date?, retainUntil: Date? = nil, disks: [VirtualDisk],
        stats: PointStats, guest: GuestOutcome, job: String, changes: ChangeTracking? = nil, definition: String? = nil,
        verification: PointVerification? = nil
    ) {
        self.verification = verification
        self.changes = changes
        self.definition = definition
        self.id = id
        self.item = item
        self.vm = vm
        self.takenAt = takenAt
        self.type = type
        self.consistency = consistency
        self.tags = tags
        self.expiresAt = expiresAt
        self.retainUntil = retainUntil
        self.disks = disks
        self.stats = stats
        self.guest = guest
        self.job = job
    }
}

/// What a backup moved.
/// How a point's backup used the fabric's changed-block tracking (X1 fabrics with dirty bitmaps).
public struct ChangeTracking: Codable, Sendable, Equatable {
    /// The fabric's marker taken with this point (next backup counts changes from it).
    public var token: String?
    /// Disks read through their changed ranges only.
    public var changedOnlyDisks: Int
    /// Why the backup read everything although an earlier point existed; nil when it did not.
    public var resyncReason: String?

    public init(token: String?, changedOnlyDisks: Int, resyncReason: String?) {
        self.token = token
        self.changedOnlyDisks = changedOnlyDisks
        self.resyncReason = resyncReason
    }
}

public struct PointStats: Codable, Sendable, Equatable {
    public var bytesRead: Int64
    public var bytesWritten: Int64
    public var blocksAdded: Int
    public var blocksChanged: Int
    public var seconds: Double

    public init(bytesRead: Int64 = 0, bytesWritten: Int64 = 0, blocksAdded: Int = 0, blocksChanged: Int = 0, seconds: Double = 0) {
        self.bytesRead = bytesRead
        self.bytesWritten = bytesWritten
        self.blocksAdded = blocksAdded
        self.blocksChanged = blocksChanged
        self.seconds = seconds
    }
}

/// The guest's side of a backup, as recorded on the point (C1, C2).
public struct GuestOutcome: Codable, Sendable, Equatable {
    /// Why the point has the consistency it has, in words.
    public var reason: String
    public var freezeDurationMilliseconds: Int?
    public var frozenFileSystems: [String]
    public var scripts: [ScriptRun]
    /// Problems the agent reported (script failures, permissions), with seed 001's codes.
    public var errors: [ErrorInfo]

    public init(reason: String, freezeDurationMilliseconds: Int? = nil, frozenFileSystems: [String] = [],
                scripts: [ScriptRun] = [], errors: [ErrorInfo] = []) {
        self.reason = reason
        self.freezeDurationMilliseconds = freezeDurationMilliseconds
        self.frozenFileSystems = frozenFileSystems
        self.scripts = scripts
        self.errors = errors
    }
}
