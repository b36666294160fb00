public import CoffreCore
public import CoffreEngine
import Foundation

/// A VM with its protection, as `GET /api/v1/vms` lists it.
public struct VMView: Codable, Sendable {
    public var vm: VMRecord
    /// `Protected`, `Protected (pending initial backup)`, … or `nil` when not protected.
    public var protection: String?
    public var policy: String?
}

/// A policy with the VMs it protects.
public struct PolicyView: Codable, Sendable {
    public var policy: Policy
    public var items: [ItemSummary]
}

/// The answer to a bulk request (registration, protection): the jobs started and, per VM,
/// why no job could start.
public struct BulkResponse: Codable, Sendable {
    public struct Failure: Codable, Sendable, Equatable {
        public var vm: String
        public var code: String
        public var message: String
        public var workaround: String?
    }

    public var jobs: [Job]
    public var errors: [Failure]

    init(_ result: BulkResult) {
        jobs = result.jobs
        errors = result.errors.map { Failure(vm: $0.vm, code: $0.error.code, message: $0.error.message, workaround: $0.error.workaround) }
    }
}

/// A recovery point with the vault's block accounting.
public struct PointView: Codable, Sendable {
    public var point: RecoveryPointRecord
    public var blocksAdded: Int
    public var blocksOnlyHere: Int
    public var bytesFreedIfExpired: Int64
}

/// A VM's protected item and its points, oldest first.
public struct PointsView: Codable, Sendable {
    public var item: ProtectedItem
    public var points: [PointView]
}

/// `POST /api/v1/registrations`.
struct RegistrationBody: Codable {
    var vms: [String]
}

/// `POST /api/v1/protection`.
struct ProtectionBody: Codable {
    var vms: [String]
    var policy: String
    /// Move VMs that are already protected to this policy.
    var change: Bool?
}

/// `POST /api/v1/vms/{vm}/backup`.
struct BackupBody: Codable {
    var retainUntil: Date?
}

/// `POST /api/v1/vms/{vm}/restore`: exactly one of `folder`, `newVmName`, `replaceDisks`.
struct RestoreBody: Codable {
    var point: String
    /// Server-side folder for raw disk images: relative to the server's restore root, or
    /// absolute (admin only).
    var folder: String?
    var newVmName: String?
    /// Overwrite the VM's own disks (admin only); needs `confirm: true`.
    var replaceDisks: Bool?
    var confirm: Bool?
}

/// `POST /api/v1/vms/{vm}/stop-protection`.
struct StopProtectionBody: Codable {
    /// `true`: soft-delete the points (admin only); `false`: keep them.
    var deleteData: Bool
}

/// `POST /api/v1/tokens`.
struct TokenBody: Codable {
    var name: String
    var role: Role
}

struct TokenResponse: Codable {
    var name: String
    var role: Role
    /// Shown only in this response.
    var token: String
}

struct TokenView: Codable {
    var name: String
    var role: Role
    var createdAt: Date
}

struct Health: Codable {
    var status: String
}
