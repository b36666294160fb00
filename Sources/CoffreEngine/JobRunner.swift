public import CoffreCore
import Foundation
import Logging
import Synchronization

/// What a job does once it runs: steps recorded through its context, its error the job's.
typealias JobBody = @Sendable (JobContext) async throws -> Void

/// The jobs one engine runs: it records them (one operation per lock, B6), claims queued ones
/// within its places, runs each with a monitor that saves progress and sees cancel requests
/// made on any node (B7), records how each ended, and knows which of its own jobs the catalog
/// shows running that it no longer runs.
///
/// It knows nothing of what jobs do: a claimed job's work comes from `resolver`, which the
/// engine sets once it is assembled.
final class JobRunner: Sendable {
    struct Settings: Sendable {
        var monitorInterval: Duration
        var maxConcurrentBackups: Int
        var fabricBackupLimits: [String: Int]
        var maxConcurrentVerifications: Int
        /// With other nodes: how long a heartbeat lasts, and how often one is sent. Without
        /// (nil), this runner never waits for heartbeats.
        var lease: (duration: Duration, heartbeat: Duration)?
    }

    let catalog: any Catalog
    let clock: any TimeSource
    let owner: String
    let logger: Logger
    private let settings: Settings
    private let running = Mutex<[String: RunningJob]>([:])
    /// Jobs whose end is recorded, while `onJobEnded` runs for them: no longer running (they
    /// take no place and heartbeats do not count them), but `wait` still waits for them.
    private let ending = Mutex<[String: RunningJob]>([:])
    private let claims = Mutex(ClaimState())
    /// Own jobs the catalog showed in progress that this runner did not run, at the last check.
    private let unaccounted = Mutex<Set<String>>([])
    /// The last heartbeat the database took, on the monotonic clock.
    private let lastHeartbeat = Mutex<ContinuousClock.Instant?>(nil)
    private let resolver = Mutex<(@Sendable (Job) -> JobBody)?>(nil)
    private let ended = Mutex<(@Sendable (Job) async -> Void)?>(nil)

    init(catalog: any Catalog, clock: any TimeSource, owner: String, settings: Settings, logger: Logger) {
        self.catalog = catalog
        self.clock = clock
        self.owner = owner
        self.settings = settings
        self.logger = logger
    }

    /// Sets what a claimed job does, from its record (it may have been queued by another node).
    func resolveWork(_ work: @escaping @Sendable (Job) -> JobBody) {
        resolver.withLock { $0 = work }
    }

    /// Sets what runs once a job's end is recorded, before those waiting for it learn of it.
    func onJobEnded(_ action: @escaping @Sendable (Job) async -> Void) {
        ended.withLock { $0 = action }
    }

    // MARK: Recording and starting

    /// Creates a job and runs `body` for it in the background.
    ///
    /// The job is inserted only if no queued or in-progress job holds `lock` (one operation
    /// per item, B6; one discovery at a time, D2) — otherwise the matching seed error is
    /// thrown and nothing is recorded.
    /// - Returns: the job as first recorded.
    func launch(
        _ type: JobType, vm: VMKey?, lock: String?, details: [String: String] = [:], body: @escaping JobBody
    ) async throws -> Job {
        let job = Job(id: Job.makeID(at: clock.now()), type: type, vm: vm, startedAt: clock.now(),
                      owner: owner, details: details)
        // Until it is registered as running, recovery must not take it for a lost one of ours.
        claims.withLock { _ = $0.starting.insert(job.id) }
        defer { claims.withLock { _ = $0.starting.remove(job.id) } }
        try await record(job, lock: lock)
        start(job, body)
        return job
    }

    /// Records a queued job, for whichever node's runner claims it first. The queued job holds
    /// `lock` as a running one does.
    func enqueue(_ type: JobType, vm: VMKey, lock: String, details: [String: String]) async throws -> Job {
        let job = Job(id: Job.makeID(at: clock.now()), type: type, status: .queued, vm: vm, startedAt: clock.now(),
                      owner: owner, details: details)
        try await record(job, lock: lock)
        return job
    }

    private func record(_ job: Job, lock: String?) async throws {
        if let holder = try await catalog.insertJob(job, lock: lock) {
            if let vm = job.vm { throw CoffreError.anotherOperationInProgress(vm, job: holder.id) }
            throw CoffreError.discoveryInProgress()
        }
    }

    private func start(_ job: Job, _ body: @escaping JobBody) {
        let context = JobContext(runner: self, job: job)
        // The lock makes the task's own removal wait until it is registered.
        running.withLock { jobs in
            jobs[job.id] = RunningJob(type: job.type, task: Task { await self.execute(context, body) }, context: context)
        }
    }

    // MARK: Claiming

    /// From now on this runner claims again whenever one of its backups ends (`coffre serve`).
    /// A command-line process claims only what it queued and waits for.
    func becomeQueueRunner() {
        claims.withLock { $0.runner = true }
    }

    /// Claims queued jobs up to this node's free places (`maxConcurrentBackups` and the
    /// fabrics' limits counted on every node; `maxConcurrentVerifications`) and runs them.
    func claimQueued() async {
        await claim(only: nil)
    }

    /// Claims one queued job if a place is free.
    /// - Returns: whether this runner runs the job now.
    @discardableResult
    func claim(jobID: String) async -> Bool {
        await claim(only: jobID)
        return running.withLock { $0[jobID] != nil }
    }

    private func claim(only id: String?) async {
        let first = claims.withLock { state -> Bool in
            guard !state.stopped else { return false }
            if state.active {
                state.again = state.again || id == nil
                return false
            }
            state.active = true
            return true
        }
        guard first else { return }
        var again = true
        while again {
            await claimOnce(only: id)
            again = claims.withLock { state in
                if state.again && !state.stopped {
                    state.again = false
                    return true
                }
                state.active = false
                return false
            }
        }
    }

    private func claimOnce(only id: String?) async {
        // A node whose heartbeats lapse is about to be taken for dead: it takes nothing new.
        if heartbeatLapsing { return }
        for (type, places, perFabric) in queues {
            let busy = running.withLock { $0.values.count { $0.type == type } }
            let limits = ClaimLimits(type: type, jobs: places - busy, perFabric: perFabric, only: id)
            guard limits.jobs > 0 else { continue }
            do {
                for job in try await catalog.claimJobs(owner: owner, limits: limits, at: clock.now()) {
                    logger.info("claimed job \(job.id) (\(job.type.rawValue) of \(job.vm?.description ?? "-"))")
                    start(job, work(of: job))
                }
            } catch {
                logger.warning("claiming queued \(type.rawValue) jobs failed: \(error)")
            }
        }
    }

    /// The types of job that wait queued for a place, with this node's places and the fabrics'
    /// limits (the other types run where they are asked for).
    private var queues: [(type: JobType, places: Int, perFabric: [String: Int])] {
        [(.backup, settings.maxConcurrentBackups, settings.fabricBackupLimits),
         (.verify, settings.maxConcurrentVerifications, [:])]
    }

    private func work(of job: Job) -> JobBody {
        if let body = resolver.withLock({ $0 })?(job) { return body }
        return { _ in throw CoffreError(.internalError, "Nothing runs \(job.type.rawValue) jobs here",
                                        workaround: "Report it with the job's id") }
    }

    // MARK: Heartbeats

    /// The database took a heartbeat sent at `sent`.
    func heartbeatTaken(sentAt sent: ContinuousClock.Instant) {
        lastHeartbeat.withLock { $0 = sent }
    }

    /// How long since the last heartbeat the database took (nil: none yet).
    var silence: Duration? { lastHeartbeat.withLock { $0.map { .now - $0 } } }

    /// With other nodes, whether the heartbeats lapse: less than a heartbeat is left before
    /// the others may take this node for dead.
    var heartbeatLapsing: Bool {
        guard let lease = settings.lease, let silence else { return false }
        return silence > lease.duration - lease.heartbeat
    }

    // MARK: Running

    private func execute(_ context: JobContext, _ body: @escaping JobBody) async -> Job {
        let monitorInterval = settings.monitorInterval
        let outcome: Result<Void, any Error> = await withTaskGroup(of: Result<Void, any Error>?.self) { group in
            group.addTask {
                do {
                    try await body(context)
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                // Saves progress and watches for a cancel request made by another process.
                while !Task.isCancelled {
                    try? await Task.sleep(for: monitorInterval)
                    if await context.saveAndCheckCancelRequest() { return nil }
                }
                return nil
            }
            // Whichever ends first stops the other: the body's end stops the monitor, and the
            // monitor ends only when it saw a cancel request, which must stop the body.
            var outcome: Result<Void, any Error> = .success(())
            while let next = await group.next() {
                if let result = next { outcome = result }
                group.cancelAll()
            }
            return outcome
        }
        let job = await context.finish(outcome)
        // Into `ending` before out of `running`: `wait` always finds the job in one of them.
        if let entry = running.withLock({ $0[job.id] }) { ending.withLock { $0[job.id] = entry } }
        _ = running.withLock { $0.removeValue(forKey: job.id) }
        // A place is free: the next queued job may start here.
        if queues.contains(where: { $0.type == job.type }) && claims.withLock({ $0.runner && !$0.stopped }) {
            Task { await self.claimQueued() }
        }
        // Whoever waits for the job (a CLI command about to exit) waits for this too.
        await ended.withLock { $0 }?(job)
        _ = ending.withLock { $0.removeValue(forKey: job.id) }
        return job
    }

    /// The record of a job this runner runs, as it is now.
    func snapshot(of id: String) -> Job? {
        running.withLock { $0[id]?.context.snapshot }
    }

    /// Stops a job this runner runs, without recording anything (its lease was lost).
    func stop(_ id: String) {
        running.withLock { $0[id] }?.task.cancel()
    }

    /// Asks a job to stop (B7): a queued one ends at once; a running one of any node sees the
    /// request within `monitorInterval`.
    func cancel(jobID: String) async throws -> Job {
        if let cancelled = try await catalog.cancelQueuedJob(id: jobID, at: clock.now()) { return cancelled }
        guard let job = try await catalog.requestCancel(jobID: jobID) else {
            guard let job = try await catalog.job(id: jobID) else { throw CoffreError.jobNotFound(jobID) }
            throw CoffreError.jobNotRunning(jobID, status: job.status.rawValue)
        }
        if let local = running.withLock({ $0[jobID] }) {
            // Before the task sees its cancellation: a cancel asked for is not a shutdown.
            local.context.markCancelRequested()
            local.task.cancel()
        }
        return job
    }

    /// Waits until a job ends and returns its final record; a job still queued is claimed here
    /// when a place is free, unless another node claims it first.
    func wait(for id: String, onUpdate: (@Sendable (Job) -> Void)?) async throws -> Job {
        while true {
            if let local = running.withLock({ $0[id] }) ?? ending.withLock({ $0[id] }) {
                let poller = Task {
                    while !Task.isCancelled {
                        onUpdate?(local.context.snapshot)
                        try? await Task.sleep(for: .milliseconds(200))
                    }
                }
                let job = await local.task.value
                poller.cancel()
                return job
            }
            guard let job = try await catalog.job(id: id) else { throw CoffreError.jobNotFound(id) }
            if job.status.isFinished { return job }
            if job.status == .queued, await claim(jobID: id) { continue }
            onUpdate?(job)
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Jobs this runner runs now.
    var runningJobIDs: [String] { running.withLock { Array($0.keys) } }

    /// Cancels every job this runner runs and waits for them to end; with `stopClaiming`, it
    /// claims no queued job any more.
    func cancelAllAndWait(stopClaiming: Bool) async {
        if stopClaiming { claims.withLock { $0.stopped = true } }
        // Again while some remain: a claim that was under way may have started more.
        while case let jobs = running.withLock({ Array($0.values) }), !jobs.isEmpty {
            for job in jobs { job.task.cancel() }
            for job in jobs { _ = await job.task.value }
        }
        // Ended jobs finish what follows their end (the catalog's copy), uncancelled.
        for job in ending.withLock({ Array($0.values) }) { _ = await job.task.value }
    }

    /// Of `mine` (this runner's jobs the catalog shows in progress), those it does not run, at
    /// this check and the one before: a job just claimed or launched is registered within
    /// moments, never a whole heartbeat later.
    func lostJobs(_ mine: [Job]) -> Set<String> {
        // A claim under way has jobs in progress in the catalog not yet running here: next time.
        guard let starting = claims.withLock({ $0.active ? nil : $0.starting }) else { return [] }
        let notRunning = Set(mine.map(\.id).filter { id in running.withLock { $0[id] == nil } && !starting.contains(id) })
        return unaccounted.withLock { earlier in
            defer { earlier = notRunning }
            return notRunning.intersection(earlier)
        }
    }
}

/// A job a runner runs.
private struct RunningJob: Sendable {
    let type: JobType
    let task: Task<Job, Never>
    let context: JobContext
}

/// A runner's claims of queued jobs: one at a time; a request made during one runs it again.
private struct ClaimState: Sendable {
    var active = false
    var again = false
    /// Set at shutdown: nothing more is claimed.
    var stopped = false
    /// The runner claims again whenever one of its backups ends.
    var runner = false
    /// Jobs being inserted as in progress by `launch`, not yet registered as running.
    var starting: Set<String> = []
}
