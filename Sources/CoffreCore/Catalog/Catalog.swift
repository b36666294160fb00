public import Foundation

/// What the vault knows: fabrics, VMs, policies, protected items, jobs and recovery points.
///
/// The catalog speaks the domain, not SQL; `SQLiteCatalog` (GRDB) is the embedded default and
/// `MemoryCatalog` the fake for tests. Every method is atomic; implementations must be safe
/// to call from many tasks at once, and — for file or server backed ones — from several
/// processes sharing the same database.
public protocol Catalog: Sendable {
    // MARK: Fabrics

    /// Records (or updates) a fabric the vault is configured with.
    func recordFabric(_ fabric: FabricRecord) async throws
    func fabrics() async throws -> [FabricRecord]

    // MARK: VMs

    /// Applies one fabric's discovery answer: new VMs are added, known ones updated (their
    /// registration kept) and marked present, and this fabric's VMs missing from `vms` are
    /// marked vanished (D1). Returns what changed.
    func applyDiscovery(fabric: String, vms: [DiscoveredVM], at date: Date) async throws -> DiscoveryChanges
    /// Every VM ever discovered, sorted by name then cloud service.
    func vms() async throws -> [VMRecord]
    func vm(_ key: VMKey) async throws -> VMRecord?
    /// Replaces a VM's record (registration state changes). Throws `VMNotFound` if absent.
    func updateVM(_ record: VMRecord) async throws

    // MARK: Policies

    /// Throws `PolicyAlreadyExists` when the name is taken.
    func insertPolicy(_ policy: Policy) async throws
    /// Throws `PolicyNotFound` when there is none by that name.
    func updatePolicy(_ policy: Policy) async throws
    /// Sorted by name.
    func policies() async throws -> [Policy]
    func policy(named name: String) async throws -> Policy?

    // MARK: Protected items

    /// Sorted by VM.
    func items() async throws -> [ProtectedItem]
    func item(for vm: VMKey) async throws -> ProtectedItem?
    func item(id: String) async throws -> ProtectedItem?
    /// Inserts or replaces by `id`. At most one item per VM: throws `AlreadyProtected` when
    /// another item id already holds `item.vm`.
    func saveItem(_ item: ProtectedItem) async throws
    /// Removes an item and every point record of it.
    func deleteItem(id: String) async throws
    /// Records the last verification slot of an item, changing nothing else of it (nothing when
    /// the item is gone).
    func recordVerificationSlot(_ slot: Date, item id: String) async throws

    // MARK: Jobs

    /// Inserts `job` unless a job holding the same `lock` is in progress; that job is
    /// returned instead and nothing is inserted. The check and the insert are one transaction,
    /// so two processes can never both start an operation on one item (B6, D2).
    func insertJob(_ job: Job, lock: String?) async throws -> Job?
    /// Replaces a job's record (status, steps, progress, error, details). Keeps a
    /// `cancelRequested` already set by `requestCancel`.
    func updateJob(_ job: Job) async throws
    func job(id: String) async throws -> Job?
    /// Newest first.
    func jobs(_ filter: JobFilter) async throws -> [Job]
    /// Sets `cancelRequested` on an in-progress job; returns the job, nil when there is none.
    func requestCancel(jobID: String) async throws -> Job?

    // MARK: Recovery points

    /// Records a new point and saves its item in one transaction: the point exists from now on (B4).
    func commitPoint(_ point: RecoveryPointRecord, item: ProtectedItem) async throws
    /// Oldest first.
    func points(item: String) async throws -> [RecoveryPointRecord]
    func point(id: String) async throws -> RecoveryPointRecord?
    /// Replaces point records by id (expiry recomputed); their `verification` is left as it is
    /// (only `recordVerification` changes it).
    func updatePoints(_ points: [RecoveryPointRecord]) async throws
    /// Records a point's latest verification; nothing happens when the point was deleted meanwhile.
    func recordVerification(_ verification: PointVerification, point id: String) async throws
    func deletePoints(ids: [String]) async throws
}

/// A fabric the vault is configured with.
public struct FabricRecord: Codable, Sendable, Equatable {
    public var name: String
    /// `local`, `libvirt`.
    public var kind: String
    public var region: String
    /// A folder or a libvirt URI.
    public var address: String

    public init(name: String, kind: String, region: String, address: String) {
        self.name = name
        self.kind = kind
        self.region = region
        self.address = address
    }
}

/// What one fabric's discovery changed in the catalog.
public struct DiscoveryChanges: Codable, Sendable, Equatable {
    public var added: [VMKey]
    public var updated: [VMKey]
    public var vanished: [VMKey]

    public init(added: [VMKey] = [], updated: [VMKey] = [], vanished: [VMKey] = []) {
        self.added = added
        self.updated = updated
        self.vanished = vanished
    }
}

/// Where the engine reads the time; tests inject a clock they move by hand.
public protocol TimeSource: Sendable {
    func now() -> Date
}

/// The system clock.
public struct SystemTimeSource: TimeSource {
    public init() {}
    public func now() -> Date { Date() }
}
