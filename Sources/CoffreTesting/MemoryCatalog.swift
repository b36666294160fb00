public import CoffreCore
public import Foundation
import Synchronization

/// A catalog in memory, for tests: the semantics of `SQLiteCatalog`, without a file.
///
/// Every method runs under one lock, which makes each of them atomic like a transaction.
public final class MemoryCatalog: Catalog {
    private struct StoredJob {
        var job: Job
        var lock: String?
    }

    private struct State {
        var fabrics: [String: FabricRecord] = [:]
        var vms: [VMKey: VMRecord] = [:]
        var policies: [String: Policy] = [:]
        var items: [String: ProtectedItem] = [:]
        var jobs: [String: StoredJob] = [:]
        var points: [String: RecoveryPointRecord] = [:]
        var tokens: [APIToken] = []
        var samples: [String: VaultSample] = [:]

        /// Inserts or replaces `item` by id, one item per VM.
        mutating func save(_ item: ProtectedItem) throws {
            if let holder = items.values.first(where: { $0.vm == item.vm && $0.id != item.id }) {
                throw CoffreError.alreadyProtected(item.vm, policy: holder.policy)
            }
            items[item.id] = item
        }
    }

    private let state = Mutex(State())

    public init() {}

    // MARK: Fabrics

    public func recordFabric(_ fabric: FabricRecord) async throws {
        state.withLock { $0.fabrics[fabric.name] = fabric }
    }

    public func fabrics() async throws -> [FabricRecord] {
        state.withLock { $0.fabrics.values.sorted { $0.name < $1.name } }
    }

    // MARK: VMs

    public func applyDiscovery(fabric: String, vms: [DiscoveredVM], at date: Date) async throws -> DiscoveryChanges {
        state.withLock { state in
            var changes = DiscoveryChanges()
            for vm in vms {
                if var record = state.vms[vm.key] {
                    record.vm = vm
                    record.fabric = fabric
                    record.presence = .present
                    record.lastSeen = date
                    state.vms[vm.key] = record
                    changes.updated.append(vm.key)
                } else {
                    state.vms[vm.key] = VMRecord(vm: vm, fabric: fabric, firstSeen: date, lastSeen: date)
                    changes.added.append(vm.key)
                }
            }
            let found = Set(vms.map(\.key))
            for (key, record) in state.vms
            where record.fabric == fabric && record.presence == .present && !found.contains(key) {
                state.vms[key]?.presence = .vanished
                changes.vanished.append(key)
            }
            changes.vanished.sort()
            return changes
        }
    }

    public func vms() async throws -> [VMRecord] {
        state.withLock { $0.vms.values.sorted { $0.key < $1.key } }
    }

    public func vm(_ key: VMKey) async throws -> VMRecord? {
        state.withLock { $0.vms[key] }
    }

    public func updateVM(_ record: VMRecord) async throws {
        try state.withLock { state in
            guard state.vms[record.key] != nil else { throw CoffreError.vmNotFound(record.key.description) }
            state.vms[record.key] = record
        }
    }

    // MARK: Policies

    public func insertPolicy(_ policy: Policy) async throws {
        try state.withLock { state in
            guard state.policies[policy.name] == nil else { throw CoffreError.policyAlreadyExists(policy.name) }
            state.policies[policy.name] = policy
        }
    }

    public func updatePolicy(_ policy: Policy) async throws {
        try state.withLock { state in
            guard state.policies[policy.name] != nil else { throw CoffreError.policyNotFound(policy.name) }
            state.policies[policy.name] = policy
        }
    }

    public func policies() async throws -> [Policy] {
        state.withLock { $0.policies.values.sorted { $0.name < $1.name } }
    }

    public func policy(named name: String) async throws -> Policy? {
        state.withLock { $0.policies[name] }
    }

    // MARK: Protected items

    public func items() async throws -> [ProtectedItem] {
        state.withLock { $0.items.values.sorted { $0.vm < $1.vm } }
    }

    public func item(for vm: VMKey) async throws -> ProtectedItem? {
        state.withLock { $0.items.values.first { $0.vm == vm } }
    }

    public func item(id: String) async throws -> ProtectedItem? {
        state.withLock { $0.items[id] }
    }

    public func saveItem(_ item: ProtectedItem) async throws {
        try state.withLock { try $0.save(item) }
    }

    public func deleteItem(id: String) async throws {
        state.withLock { state in
            state.items[id] = nil
            state.points = state.points.filter { $0.value.item != id }
        }
    }

    // MARK: Jobs

    public func insertJob(_ job: Job, lock: String?) async throws -> Job? {
        state.withLock { state in
            if let lock, let holder = state.jobs.values.first(where: { $0.lock == lock && $0.job.holdsLock }) {
                return holder.job
            }
            state.jobs[job.id] = StoredJob(job: job, lock: lock)
            return nil
        }
    }

    public func updateJob(_ job: Job) async throws {
        try state.withLock { state in
            let stored = state.jobs[job.id]
            try job.checkLease(stored: stored.map { ($0.job.status, $0.job.owner) })
            var job = job
            job.cancelRequested = job.cancelRequested || stored!.job.cancelRequested
            state.jobs[job.id] = StoredJob(job: job, lock: stored!.lock)
        }
    }

    public func cancelQueuedJob(id: String, at date: Date) async throws -> Job? {
        state.withLock { state in
            guard let stored = state.jobs[id], stored.job.status == .queued else { return nil }
            state.jobs[id]?.job = stored.job.cancelledInQueue(at: date)
            return state.jobs[id]?.job
        }
    }

    public func claimJobs(owner: String, limits: ClaimLimits, at date: Date) async throws -> [Job] {
        state.withLock { state in
            let queued = state.jobs.values.map(\.job).filter { $0.status == .queued }
                .sorted { ($0.startedAt, $0.id) < ($1.startedAt, $1.id) }
            var running: [String: Int] = [:]
            for job in state.jobs.values.map(\.job) where job.status == .inProgress && job.type == limits.type {
                running[job.details["fabric"] ?? "", default: 0] += 1
            }
            return limits.select(queued, running: running).map { job in
                let claimed = ClaimLimits.claimed(job, owner: owner, at: date)
                state.jobs[job.id]?.job = claimed
                return claimed
            }
        }
    }

    public func job(id: String) async throws -> Job? {
        state.withLock { $0.jobs[id]?.job }
    }

    public func jobs(_ filter: JobFilter) async throws -> [Job] {
        let jobs = state.withLock { $0.jobs.values.map(\.job) }
            .filter { job in
                (filter.type.map { job.type == $0 } ?? true)
                    && (filter.status.map { job.status == $0 } ?? true)
                    && (filter.vm.map { job.vm == $0 } ?? true)
                    && (filter.since.map { job.startedAt >= $0 } ?? true)
                    && (filter.until.map { job.startedAt < $0 } ?? true)
            }
            .sorted { ($0.startedAt, $0.id) > ($1.startedAt, $1.id) }
        return filter.limit.map { Array(jobs.prefix($0)) } ?? jobs
    }

    public func requestCancel(jobID: String) async throws -> Job? {
        state.withLock { state in
            guard state.jobs[jobID]?.job.status == .inProgress else { return nil }
            state.jobs[jobID]?.job.cancelRequested = true
            return state.jobs[jobID]?.job
        }
    }

    // MARK: Recovery points

    public func commitPoint(_ point: RecoveryPointRecord, item: ProtectedItem, job: Job?) async throws {
        try state.withLock { state in
            try job?.checkRunning(stored: job.flatMap { state.jobs[$0.id] }.map { ($0.job.status, $0.job.owner) })
            try state.save(item)
            state.points[point.id] = point
        }
    }

    public func points(item: String) async throws -> [RecoveryPointRecord] {
        state.withLock { $0.points.values.filter { $0.item == item } }
            .sorted { ($0.takenAt, $0.id) < ($1.takenAt, $1.id) }
    }

    public func point(id: String) async throws -> RecoveryPointRecord? {
        state.withLock { $0.points[id] }
    }

    public func updatePoints(_ points: [RecoveryPointRecord]) async throws {
        state.withLock { state in
            for var point in points {
                guard let stored = state.points[point.id] else { continue }
                point.verification = stored.verification
                state.points[point.id] = point
            }
        }
    }

    public func recordVerificationSlot(_ slot: Date, item id: String) async throws {
        state.withLock { $0.items[id]?.lastVerificationSlot = slot }
    }

    public func recordVerification(_ verification: PointVerification, point id: String) async throws {
        state.withLock { $0.points[id]?.verification = verification }
    }

    public func deletePoints(ids: [String]) async throws {
        state.withLock { state in
            for id in ids { state.points[id] = nil }
        }
    }

    // MARK: API tokens

    @discardableResult
    public func insertToken(_ token: APIToken, ifNoneExists: Bool) async throws -> Bool {
        try state.withLock { state in
            if ifNoneExists && !state.tokens.isEmpty { return false }
            guard !state.tokens.contains(where: { $0.hash == token.hash }) else {
                throw CoffreError.catalogFailed("memory", detail: "a token with this hash exists already")
            }
            state.tokens.append(token)
            return true
        }
    }

    public func recordVaultSample(_ sample: VaultSample, keepingDays: Int) async throws {
        let oldest = VaultSample.oldestDayKept(by: sample, keepingDays: keepingDays)
        state.withLock { state in
            state.samples[sample.day] = sample
            state.samples = state.samples.filter { $0.key >= oldest }
        }
    }

    public func vaultSamples() async throws -> [VaultSample] {
        state.withLock { $0.samples.values.sorted { $0.day < $1.day } }
    }

    public func tokens() async throws -> [APIToken] {
        state.withLock { $0.tokens }.sorted { ($0.createdAt, $0.hash) < ($1.createdAt, $1.hash) }
    }

    public func token(hash: String) async throws -> APIToken? {
        state.withLock { $0.tokens.first { $0.hash == hash } }
    }
}
