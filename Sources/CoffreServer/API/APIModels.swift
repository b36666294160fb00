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
        public var code: CoffreError.Code
        public var message: String
        public var workaround: String?
    }

    public var jobs: [Job]
    public var errors: [Failure]

    public init(_ result: BulkResult) {
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
public struct RegistrationBody: Codable, Sendable {
    public var vms: [String]

    public init(vms: [String]) {
        self.vms = vms
    }
}

/// `POST /api/v1/protection`.
public struct ProtectionBody: Codable, Sendable {
    public var vms: [String]
    public var policy: String
    /// Move VMs that are already protected to this policy.
    public var change: Bool?

    public init(vms: [String], policy: String, change: Bool? = nil) {
        self.vms = vms
        self.policy = policy
        self.change = change
    }
}

/// `POST /api/v1/vms/{vm}/backup`.
public struct BackupBody: Codable, Sendable {
    public var retainUntil: Date?

    public init(retainUntil: Date? = nil) {
        self.retainUntil = retainUntil
    }
}

/// `POST /api/v1/vms/{vm}/restore`: exactly one of `folder`, `newVmName`, `replaceDisks`.
public struct RestoreBody: Codable, Sendable {
    public var point: String
    /// With `newVmName`: start the VM at once on the point's disks served by the vault, copy
    /// them while it runs (instant restore, libvirt fabric).
    public var instant: Bool?
    /// Server-side folder for the disk images: relative to the server's restore root, or
    /// absolute (admin only).
    public var folder: String?
    /// With `folder`: `raw` (the default) or `qcow2`.
    public var format: String?
    public var newVmName: String?
    /// Overwrite the VM's own disks (admin only); needs `confirm: true`.
    public var replaceDisks: Bool?
    public var confirm: Bool?

    public init(point: String, folder: String? = nil, newVmName: String? = nil, replaceDisks: Bool? = nil, confirm: Bool? = nil) {
        self.point = point
        self.folder = folder
        self.newVmName = newVmName
        self.replaceDisks = replaceDisks
        self.confirm = confirm
    }
}

/// `POST /api/v1/vms/{vm}/verify`: check a point (the newest when `point` is absent).
public struct VerifyBody: Codable, Sendable {
    public var point: String?
    /// `data`, `boot`; default `["data"]`.
    public var checks: [String]?
    /// For `boot`: a shell command run in the guest; success is exit status 0.
    public var bootCommand: String?
    /// For `boot`: how long to wait for the guest (default 300).
    public var bootTimeoutSeconds: Int?

    public init(point: String? = nil, checks: [String]? = nil, bootCommand: String? = nil, bootTimeoutSeconds: Int? = nil) {
        self.point = point
        self.checks = checks
        self.bootCommand = bootCommand
        self.bootTimeoutSeconds = bootTimeoutSeconds
    }

    /// The engine's request; an unknown check is `InvalidArgument`.
    public func request() throws -> Engine.VerificationRequest {
        Engine.VerificationRequest(checks: try (checks ?? ["data"]).map(VerificationCheck.init(parsing:)), bootCommand: bootCommand,
                                   bootTimeoutSeconds: bootTimeoutSeconds ?? VerificationPolicy.defaultBootTimeoutSeconds)
    }
}

/// `POST /api/v1/vms/{vm}/stop-protection`.
public struct StopProtectionBody: Codable, Sendable {
    /// `true`: soft-delete the points (admin only); `false`: keep them.
    public var deleteData: Bool

    public init(deleteData: Bool) {
        self.deleteData = deleteData
    }
}

/// `POST /api/v1/tokens`.
public struct TokenBody: Codable, Sendable {
    public var name: String
    public var role: Role

    public init(name: String, role: Role) {
        self.name = name
        self.role = role
    }
}

public struct TokenResponse: Codable, Sendable {
    public var name: String
    public var role: Role
    /// Shown only in this response.
    public var token: String
}

public struct TokenView: Codable, Sendable {
    public var name: String
    public var role: Role
    public var createdAt: Date
}

struct Health: Codable {
    var status: String
}

// The views are built here once, for the REST API and for the CLI working in-process.
extension Engine {
    /// Discovered VMs with their protection (`--unregistered`: only those `register` accepts).
    public func vmViews(unregistered: Bool = false) async throws -> [VMView] {
        let items = try await itemsByVM()
        return try await vms(unregistered: unregistered).map { Self.view($0, items) }
    }

    /// One VM, named as name or cloudService/name.
    public func vmView(_ name: String) async throws -> VMView {
        Self.view(try await resolveVM(name), try await itemsByVM())
    }

    /// A VM's protected item and points with the vault's block accounting.
    public func pointsView(of name: String) async throws -> PointsView {
        let (item, points, accounting) = try await points(of: name)
        let views = points.map { point in
            let a = accounting[point.id]
            return PointView(point: point, blocksAdded: a?.blocksAdded ?? point.stats.blocksAdded,
                             blocksOnlyHere: a?.blocksOnlyHere ?? 0, bytesFreedIfExpired: a?.bytesFreedIfExpired ?? 0)
        }
        return PointsView(item: item, points: views)
    }

    /// A policy with the items it protects.
    public func policyView(named name: String) async throws -> PolicyView {
        let policy = try await policy(named: name)
        return PolicyView(policy: policy, items: try await itemSummaries().filter { $0.item.policy == name })
    }

    private func itemsByVM() async throws -> [VMKey: ItemSummary] {
        Dictionary(try await itemSummaries().map { ($0.item.vm, $0) }, uniquingKeysWith: { first, _ in first })
    }

    private static func view(_ record: VMRecord, _ items: [VMKey: ItemSummary]) -> VMView {
        VMView(vm: record, protection: items[record.key]?.status, policy: items[record.key]?.item.policy)
    }
}
