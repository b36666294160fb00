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

    /// Inserts `job` (queued or in progress) unless a queued or in-progress job holds the same
    /// `lock`; that job is returned instead and nothing is inserted. The check and the insert
    /// are one transaction, so two processes can never both start an operation on one item (B6, D2).
    func insertJob(_ job: Job, lock: String?) async throws -> Job?
    /// Replaces the record of a job that is still queued or in progress and still owned by
    /// `job.owner` (status, steps, progress, error, details). Keeps a `cancelRequested` already
    /// set by `requestCancel`.
    /// - Throws: `JobLeaseLost` when the stored job ended or changed hands (another node took its
    ///   owner for dead); `JobNotFound` when there is none.
    func updateJob(_ job: Job) async throws
    func job(id: String) async throws -> Job?
    /// Newest first.
    func jobs(_ filter: JobFilter) async throws -> [Job]
    /// Sets `cancelRequested` on an in-progress job; returns the job, nil when there is none.
    func requestCancel(jobID: String) async throws -> Job?
    /// Ends a queued job as Cancelled at `date` before anyone claims it; nil when it is not queued.
    func cancelQueuedJob(id: String, at date: Date) async throws -> Job?
    /// Claims queued jobs for `owner`, oldest first, in one short transaction: each becomes
    /// in progress and `owner`'s. At most `limits.jobs` are claimed, and none of a fabric
    /// that already runs `limits.perFabric[fabric]` in-progress jobs of `limits.type` (on
    /// every node). Two claimers never claim one job.
    func claimJobs(owner: String, limits: ClaimLimits, at date: Date) async throws -> [Job]

    // MARK: Recovery points

    /// Records a new point and saves its item in one transaction: the point exists from now on
    /// (B4). With `job`, only while that job is in progress and still `job.owner`'s.
    /// - Throws: `JobLeaseLost` when the job ended or changed hands: nothing is committed.
    func commitPoint(_ point: RecoveryPointRecord, item: ProtectedItem, job: Job?) async throws
    /// Oldest first.
    func points(item: String) async throws -> [RecoveryPointRecord]
    func point(id: String) async throws -> RecoveryPointRecord?
    /// Replaces point records by id (expiry recomputed); their `verification` is left as it is
    /// (only `recordVerification` changes it).
    func updatePoints(_ points: [RecoveryPointRecord]) async throws
    /// Records a point's latest verification; nothing happens when the point was deleted meanwhile.
    func recordVerification(_ verification: PointVerification, point id: String) async throws
    func deletePoints(ids: [String]) async throws

    // MARK: API tokens

    /// Records a token. With `ifNoneExists`, only when the catalog has no token at all, checked
    /// in the same transaction (the first start of several nodes creates one admin token).
    /// - Returns: whether it was recorded.
    @discardableResult
    func insertToken(_ token: APIToken, ifNoneExists: Bool) async throws -> Bool
    /// Oldest first.
    func tokens() async throws -> [APIToken]
    func token(hash: String) async throws -> APIToken?

    // MARK: History

    /// Records the day's sample (replacing an earlier one of the same day) and forgets samples
    /// of days more than `keepingDays` before it: the history stays bounded.
    func recordVaultSample(_ sample: VaultSample, keepingDays: Int) async throws
    /// Oldest first.
    func vaultSamples() async throws -> [VaultSample]

    // MARK: All of it

    /// Every record, as one consistent view: what a catalog copy in the vault and a migration
    /// hold. The default reads call after call (`MemoryCatalog`).
    func snapshot() async throws -> CatalogSnapshot
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
extension Catalog {
    /// Commits a point with no job to check (tests, imports).
    public func commitPoint(_ point: RecoveryPointRecord, item: ProtectedItem) async throws {
        try await commitPoint(point, item: item, job: nil)
    }
}

extension Job {
    /// Whether this job holds its lock: queued or in progress.
    public var holdsLock: Bool { !status.isFinished }

    /// Throws unless the catalog's copy of this job (its status and owner; nil: none) may be
    /// replaced by this record: still queued or in progress, and still `owner`'s.
    public func checkLease(stored: (status: JobStatus, owner: String)?) throws {
        guard let stored else { throw CoffreError.jobNotFound(id) }
        guard !stored.status.isFinished, stored.owner == owner else { throw CoffreError.jobLeaseLost(id) }
    }

    /// Throws unless the catalog's copy shows this job in progress and `owner`'s: the condition
    /// for committing its point.
    public func checkRunning(stored: (status: JobStatus, owner: String)?) throws {
        guard let stored else { throw CoffreError.jobNotFound(id) }
        guard stored.status == .inProgress, stored.owner == owner else { throw CoffreError.jobLeaseLost(id) }
    }

    /// This queued job ended at `date` by a cancel before anyone ran it.
    public func cancelledInQueue(at date: Date) -> Job {
        var job = self
        job.status = .cancelled
        job.endedAt = date
        job.cancelRequested = true
        job.error = ErrorInfo(CoffreError.cancelled())
        return job
    }
}

/// How many queued jobs one claim may take.
public struct ClaimLimits: Sendable, Equatable {
    /// The type of job claimed (and counted per fabric).
    public var type: JobType
    /// At most this many jobs in this claim (the node's free places).
    public var jobs: Int
    /// In-progress jobs of `type` a fabric may have on every node together; a fabric not
    /// listed has no limit. A job's fabric is its `details["fabric"]`.
    public var perFabric: [String: Int]
    /// Only this job, if it is queued (a command-line process runs the job it queued, nothing else).
    public var only: String?

    public init(type: JobType, jobs: Int, perFabric: [String: Int] = [:], only: String? = nil) {
        self.type = type
        self.jobs = jobs
        self.perFabric = perFabric
        self.only = only
    }

    /// Which of `queued` (oldest first) one claim takes, given the in-progress jobs per fabric.
    /// Every catalog applies this one rule inside its claim transaction.
    public func select(_ queued: [Job], running: [String: Int]) -> [Job] {
        var running = running
        var chosen: [Job] = []
        for job in queued where chosen.count < jobs && job.type == type && (only == nil || job.id == only) {
            let fabric = job.details["fabric"] ?? ""
            if let limit = perFabric[fabric], running[fabric, default: 0] >= limit { continue }
            running[fabric, default: 0] += 1
            chosen.append(job)
        }
        return chosen
    }

    /// `job` as `owner` claims it at `date`: in progress, with when it was claimed (ISO 8601,
    /// to the millisecond: what the claim latency is measured from).
    public static func claimed(_ job: Job, owner: String, at date: Date) -> Job {
        var job = job
        job.status = .inProgress
        job.owner = owner
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        job.details["claimedAt"] = formatter.string(from: date)
        return job
    }
}

public protocol TimeSource: Sendable {
    func now() -> Date
}

/// The system clock.
public struct SystemTimeSource: TimeSource {
    public init() {}
    public func now() -> Date { Date() }
}

/// One day's measure of the vault (issue 19's storage chart): what the store holds against what
/// the live points represent. The catalog keeps one per UTC day, the last of the day winning.
public struct VaultSample: Codable, Sendable, Equatable {
    /// `2026-12-06` (UTC).
    public var day: String
    public var takenAt: Date
    /// Bytes the store holds (packs, index, manifests, catalog copies).
    public var storedBytes: Int64
    /// The disk bytes the live points represent (each point's disks, summed): what restoring
    /// every point would write. Their ratio is the saving of deduplication and compression.
    public var logicalBytes: Int64

    public init(day: String, takenAt: Date, storedBytes: Int64, logicalBytes: Int64) {
        self.day = day
        self.takenAt = takenAt
        self.storedBytes = storedBytes
        self.logicalBytes = logicalBytes
    }

    /// The oldest day a catalog keeps after recording `sample` with `keepingDays`.
    public static func oldestDayKept(by sample: VaultSample, keepingDays: Int) -> String {
        day(of: sample.takenAt.addingTimeInterval(-Double(max(0, keepingDays)) * 86_400))
    }

    /// `2026-12-06` for a date (UTC).
    public static func day(of date: Date) -> String {
        String(compactTimestamp(date).prefix(8)).enumerated().map { index, character in
            index == 4 || index == 6 ? "-\(character)" : String(character)
        }.joined()
    }
}
