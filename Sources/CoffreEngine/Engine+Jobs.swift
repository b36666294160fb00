public import CoffreCore
import Foundation
import Synchronization

/// A job this engine instance runs.
struct RunningJob: Sendable {
    let type: JobType
    let task: Task<Job, Never>
    let context: JobContext
}

/// This engine's claims of queued jobs: one at a time; a request made during one runs it again.
struct ClaimState: Sendable {
    var active = false
    var again = false
    /// Set at shutdown: nothing more is claimed.
    var stopped = false
    /// This engine runs the queue (`run()`): it claims again whenever one of its backups ends.
    /// A command-line process claims only what it queued and waits for.
    var runner = false
    /// Jobs being inserted as in progress by `launch`, not yet registered as running.
    var starting: Set<String> = []
}

extension Engine {
    /// Creates a job and runs `body` for it in the background, on this engine.
    ///
    /// The job is inserted only if no queued or in-progress job holds `lock` (one operation
    /// per item, B6; one discovery at a time, D2) — otherwise the matching seed error is
    /// thrown and nothing is recorded. `body` records steps through its `JobContext`; its
    /// error becomes the job's.
    /// - Returns: the job as first recorded.
    @discardableResult
    func launch(
        _ type: JobType, vm: VMKey?, lock: String?, details: [String: String] = [:],
        body: @escaping @Sendable (JobContext) async throws -> Void
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

    /// Records a queued job, for whichever node's runner claims it first (`runQueuedJobs`).
    /// The queued job holds `lock` as a running one does.
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

    private func start(_ job: Job, _ body: @escaping @Sendable (JobContext) async throws -> Void) {
        let context = JobContext(engine: self, job: job)
        // The lock makes the task's own removal wait until it is registered.
        running.withLock { jobs in
            jobs[job.id] = RunningJob(type: job.type, task: Task { await self.execute(context, body) }, context: context)
        }
    }

    /// Claims queued jobs up to this node's free places (`maxConcurrentBackups`, and the
    /// fabrics' `fabricBackupLimits` counted on every node) and runs them. `coffre serve`'s
    /// runner calls it every `claimInterval` and whenever one of its jobs ends.
    public func runQueuedJobs() async {
        await claim(only: nil)
    }

    /// Claims one queued job for this engine if a place is free: how a command-line process
    /// runs the job it queued without taking others' work it would not wait for.
    /// - Returns: whether this engine runs the job now.
    @discardableResult
    func claim(jobID: String) async -> Bool {
        await claim(only: jobID)
        return running.withLock { $0[jobID] != nil }
    }

    /// Claims, of `jobs`, those still queued, as places allow (`coffre scheduler --once` runs
    /// the backups it queued).
    public func claim(_ jobs: [Job]) async {
        for job in jobs { await claim(jobID: job.id) }
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
        if coordinator != nil, let last = leader.withLock({ $0.lastHeartbeat }),
           ContinuousClock.now - last > configuration.leaderLease - configuration.heartbeatInterval {
            return
        }
        let busy = running.withLock { $0.values.count { $0.type == .backup } }
        var limits = ClaimLimits(type: .backup, jobs: configuration.maxConcurrentBackups - busy,
                                 perFabric: configuration.fabricBackupLimits)
        limits.only = id
        guard limits.jobs > 0 else { return }
        do {
            for job in try await catalog.claimJobs(owner: owner, limits: limits, at: clock.now()) {
                logger.info("claimed job \(job.id) (\(job.type.rawValue) of \(job.vm?.description ?? "-"))")
                start(job, work(of: job))
            }
        } catch {
            logger.warning("claiming queued jobs failed: \(error)")
        }
    }

    /// What a claimed job does, from its record (it may have been queued by another node).
    private func work(of job: Job) -> @Sendable (JobContext) async throws -> Void {
        switch job.type {
        case .backup:
            return { context in try await self.runQueuedBackup(context) }
        default:
            return { _ in throw CoffreError(.internalError, "A \(job.type.rawValue) job cannot be queued",
                                            workaround: "Report it with the job's id") }
        }
    }

    private func execute(_ context: JobContext, _ body: @escaping @Sendable (JobContext) async throws -> Void) async -> Job {
        let outcome: Result<Void, any Error> = await withTaskGroup(of: Result<Void, any Error>?.self) { group in
            group.addTask {
                do {
                    try await body(context)
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            group.addTask { [configuration] in
                // Saves progress and watches for a cancel request made by another process.
                while !Task.isCancelled {
                    try? await Task.sleep(for: configuration.monitorInterval)
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
        _ = running.withLock { $0.removeValue(forKey: job.id) }
        // A place is free: the next queued job may start here.
        if job.type == .backup && claims.withLock({ $0.runner && !$0.stopped }) { Task { await self.runQueuedJobs() } }
        return job
    }

    /// Asks a running job to stop (B7). Works for jobs of other processes sharing the catalog:
    /// they see the request within `monitorInterval`.
    @discardableResult
    public func cancel(jobID: String) async throws -> Job {
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

    /// Waits until a job ends and returns its final record. A job still queued is claimed by
    /// this engine when a place is free (a command-line process runs what it queued), unless
    /// another node claims it first.
    /// - Parameter onUpdate: called about every 200 ms with the job's current record.
    public func wait(for id: String, onUpdate: (@Sendable (Job) -> Void)? = nil) async throws -> Job {
        while true {
            if let local = running.withLock({ $0[id] }) {
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

    /// Jobs this instance is running now.
    public var runningJobIDs: [String] { running.withLock { Array($0.keys) } }

    /// Cancels every job this instance runs and waits for them to end (shutdown); with
    /// `stopClaiming`, this engine claims no queued job any more.
    public func cancelAllAndWait(stopClaiming: Bool = false) async {
        if stopClaiming { claims.withLock { $0.stopped = true } }
        // Again while some remain: a claim that was under way may have started more.
        while case let jobs = running.withLock({ Array($0.values) }), !jobs.isEmpty {
            for job in jobs { job.task.cancel() }
            for job in jobs { _ = await job.task.value }
        }
    }

    /// Marks jobs whose owner process or node is gone as failed (`JobInterrupted`) and removes what
    /// they left: a backup's snapshot and any point it stored but never committed, a
    /// registration's `registering` state. Nothing of an interrupted job stays visible.
    public func recoverInterruptedJobs() async throws {
        try await recover(try await catalog.jobs(JobFilter(status: .inProgress)))
    }

    /// Recovers this engine's own jobs that the catalog shows in progress but it no longer
    /// runs: a job whose end could not be recorded while the database was away. Every node
    /// does it at each heartbeat; the leader does it with the others' jobs.
    func recoverOwnJobs() async throws {
        try await recover(try await catalog.jobs(JobFilter(status: .inProgress)).filter { $0.owner == owner })
    }

    private func recover(_ jobs: [Job]) async throws {
        let lost = lostOwnJobs(jobs.filter { $0.owner == owner })
        for job in jobs {
            if job.owner == owner {
                guard lost.contains(job.id) else { continue }
            } else if await ownerIsAlive(job.owner) {
                continue
            }
            do {
                if let point = try await committedPoint(of: job) {
                    // It died after committing, before recording its end: the backup is done.
                    logger.warning("job \(job.id) committed \(point.id) before its owner stopped; recording it succeeded")
                    try await catalog.updateJob(completed(job, point: point))
                    _ = try await cleanUpInterrupted(job)
                    continue
                }
                logger.warning("job \(job.id) was interrupted; cleaning up")
                if job.type == .backup {
                    // Ended first, cleaned after: from then on its owner can commit nothing
                    // (commitPoint checks the job still runs), so what cleanup finds uncommitted
                    // stays so (decision 0025).
                    try await catalog.updateJob(interrupted(job, left: nil))
                    _ = try await cleanUpInterrupted(job)
                } else {
                    try await catalog.updateJob(interrupted(job, left: try await cleanUpInterrupted(job)))
                }
            } catch let error as CoffreError where error.code == .jobLeaseLost {
                logger.info("job \(job.id) ended meanwhile; nothing to recover")
            }
        }
    }

    /// This engine's jobs the catalog shows in progress that it does not run, at this check and
    /// the one before (a job just claimed or launched is registered within moments, never a
    /// whole heartbeat later).
    private func lostOwnJobs(_ mine: [Job]) -> Set<String> {
        // A claim under way has jobs in progress in the catalog not yet running here: next time.
        guard let starting = claims.withLock({ $0.active ? nil : $0.starting }) else { return [] }
        let notRunning = Set(mine.map(\.id).filter { id in running.withLock { $0[id] == nil } && !starting.contains(id) })
        return unaccounted.withLock { earlier in
            defer { earlier = notRunning }
            return notRunning.intersection(earlier)
        }
    }

    /// The point a backup job committed, if it did.
    private func committedPoint(of job: Job) async throws -> RecoveryPointRecord? {
        guard job.type == .backup, let vm = job.vm, let item = try await catalog.item(for: vm) else { return nil }
        return try await catalog.points(item: item.id).last { $0.job == job.id }
    }

    private func completed(_ job: Job, point: RecoveryPointRecord) -> Job {
        var done = job
        done.status = .succeeded
        done.endedAt = clock.now()
        done.details["point"] = point.id
        done.details["consistency"] = point.consistency.rawValue
        done.details["endRecordedBy"] = owner
        for index in done.steps.indices where done.steps[index].status == .inProgress {
            done.steps[index].status = .succeeded
            done.steps[index].endedAt = done.endedAt
        }
        return done
    }

    private func interrupted(_ job: Job, left: String?) -> Job {
        var failed = job
        failed.status = .failed
        failed.endedAt = clock.now()
        var error = CoffreError.jobInterrupted(job.id)
        if let left {
            error.message += ". \(left)"
            if job.type == .restore { error.workaround = "See what is left above and decide what to keep; then run the operation again" }
        }
        failed.error = ErrorInfo(error)
        for index in failed.steps.indices where failed.steps[index].status == .inProgress {
            failed.steps[index].status = .failed
            failed.steps[index].endedAt = failed.endedAt
        }
        return failed
    }

    /// - Returns: what the job left that cleanup must not remove (an instant restore's VM), in words.
    private func cleanUpInterrupted(_ job: Job) async throws -> String? {
        guard let vm = job.vm else { return nil }
        switch job.type {
        case .backup:
            if let record = try await catalog.vm(vm), let fabric = try? fabric(named: record.fabric) {
                // A guest it prepared is released now (post-script, thaw), not when the agent's
                // watchdog gives up: until then every backup of the VM would be refused
                // (GuestAlreadyPrepared). A guest it never prepared refuses the release: harmless.
                if job.steps.contains(where: { $0.name == "Prepare guest" }),
                   let channel = try? await fabric.guestChannel(for: vm) {
                    _ = try? await channel.release(job: job.id)
                }
                try? await fabric.removeSnapshot(of: vm, id: job.id)
            }
            if let item = try await catalog.item(for: vm) {
                try await expireUncommittedPoints(of: item)
            }
        case .register:
            if var record = try await catalog.vm(vm), record.registration == .registering {
                record.registration = .failed
                record.registrationError = ErrorInfo(CoffreError.jobInterrupted(job.id))
                try await catalog.updateVM(record)
            }
        case .restore, .verify:
            // An instant restore's VM may hold what its users wrote since it started: kept and
            // described. A boot verification's VM is removed.
            let (key, purpose): (String, InstantRestoreRequest.Purpose) =
                job.type == .restore ? ("instantVM", .restore) : ("verifyVM", .verification)
            if let name = job.details[key], let record = try await catalog.vm(vm), let fabric = try? fabric(named: record.fabric) {
                return await fabric.recoverInstantRestore(job: job.id, name: name, id: job.details["instantVMID"], purpose: purpose)
            }
        default:
            break
        }
        return nil
    }

    /// Expires points the store holds for `item` that the catalog never committed and never
    /// will: a backup killed between writing its manifest and committing.
    ///
    /// The order makes it safe with backups running on any node (decision 0025): the store is
    /// listed first; then, if a job of the item is in progress, nothing is done; else every
    /// listed point's job had ended, and a job commits only while in progress, so a listed
    /// point the catalog read after that does not hold will never be committed.
    func expireUncommittedPoints(of item: ProtectedItem) async throws {
        try await expireUncommitted(try await store.storedPoints(item: item.id), of: [item])
    }

    /// Expires, of `stored` (listed from the store before this call), the points of `items`
    /// the catalog has not committed, skipping items with a job in progress now.
    func expireUncommitted(_ stored: [StoredPoint], of items: [ProtectedItem]) async throws {
        guard !stored.isEmpty else { return }
        let byItem = Dictionary(grouping: stored, by: \.item)
        let busy = Set(try await catalog.jobs(JobFilter(status: .inProgress)).compactMap(\.vm))
        for item in items where !busy.contains(item.vm) {
            guard let points = byItem[item.id] else { continue }
            let committed = Set(try await catalog.points(item: item.id).map(\.id))
            for point in points where !committed.contains(point.id) {
                logger.warning("expiring uncommitted point \(point.id) of \(item.vm)")
                try await store.expirePoint(point.id)
            }
        }
    }
}

/// A running job's record, changed by its steps and saved to the catalog as it goes.
final class JobContext: Sendable {
    let engine: Engine
    private let state: Mutex<State>

    private struct State {
        var job: Job
        /// The catalog no longer takes this job's record from this engine.
        var leaseLost = false
    }

    init(engine: Engine, job: Job) {
        self.engine = engine
        self.state = Mutex(State(job: job))
    }

    var snapshot: Job { state.withLock { $0.job } }
    var id: String { state.withLock { $0.job.id } }

    /// Runs one named step, recording its timing and outcome.
    func step<T: Sendable>(_ name: String, _ body: () async throws -> T) async throws -> T {
        let index = state.withLock { s in
            s.job.steps.append(JobStep(name: name, startedAt: engine.clock.now()))
            return s.job.steps.count - 1
        }
        await save()
        do {
            let value = try await body()
            endStep(index, .succeeded)
            await save()
            return value
        } catch {
            endStep(index, isCancellation(error) ? .cancelled : .failed)
            throw error
        }
    }

    /// Records a step that was not needed, with why.
    func skip(_ name: String, because reason: String) {
        let now = engine.clock.now()
        state.withLock { $0.job.steps.append(JobStep(name: name, status: .skipped, startedAt: now, endedAt: now, detail: reason)) }
    }

    /// Sets the detail and bytes of the current (last) step.
    func note(_ detail: String, bytes: Int64? = nil) {
        state.withLock { s in
            guard !s.job.steps.isEmpty else { return }
            s.job.steps[s.job.steps.count - 1].detail = detail
            if let bytes { s.job.steps[s.job.steps.count - 1].bytes = bytes }
        }
    }

    func setDetail(_ key: String, _ value: String?) {
        state.withLock { $0.job.details[key] = value }
    }

    func setProgress(_ progress: JobProgress) {
        state.withLock { $0.job.progress = progress }
    }

    private func endStep(_ index: Int, _ status: JobStep.Status) {
        let now = engine.clock.now()
        state.withLock { s in
            s.job.steps[index].status = status
            s.job.steps[index].endedAt = now
        }
    }

    /// Throws `Cancelled` when the job was asked to stop.
    func checkCancelled() throws {
        if Task.isCancelled || snapshot.cancelRequested { throw CoffreError.cancelled() }
    }

    /// Saves the record; a failed save is logged, never fatal to the job — except a lost
    /// lease: another node took this one for dead and ended the job, which must stop.
    func save() async {
        do {
            try await engine.catalog.updateJob(snapshot)
        } catch let error as CoffreError where error.code == .jobLeaseLost {
            engine.logger.error("\(error.message): stopping it")
            state.withLock { $0.leaseLost = true }
            engine.running.withLock { $0[id] }?.task.cancel()
        } catch {
            engine.logger.error("saving job \(id) failed: \(error)")
        }
    }

    /// Someone asked this job to stop (as opposed to the process stopping).
    func markCancelRequested() {
        state.withLock { $0.job.cancelRequested = true }
    }

    /// Saves progress, then reads back whether someone asked to cancel.
    func saveAndCheckCancelRequest() async -> Bool {
        await save()
        guard let stored = try? await engine.catalog.job(id: id), stored.cancelRequested else { return false }
        state.withLock { $0.job.cancelRequested = true }
        return true
    }

    /// Records how the job ended and saves it.
    func finish(_ outcome: Result<Void, any Error>) async -> Job {
        let now = engine.clock.now()
        state.withLock { s in
            s.job.endedAt = now
            switch outcome {
            case .success:
                s.job.status = .succeeded
            case .failure(let error) where isCancellation(error):
                s.job.status = .cancelled
                s.job.error = ErrorInfo(CoffreError.cancelled())
            case .failure(let error):
                s.job.status = .failed
                s.job.error = error as? ErrorInfo ?? (error as? CoffreError).map(ErrorInfo.init)
                    ?? ErrorInfo(code: .internalError, message: String(describing: error),
                                 workaround: "Retry the operation; if it fails again, report it with the job's id")
            }
            for index in s.job.steps.indices where s.job.steps[index].status == .inProgress {
                s.job.steps[index].status = s.job.status == .cancelled ? .cancelled : .failed
                s.job.steps[index].endedAt = now
            }
        }
        // A finished job must be recorded: retry a few times (the database may be busy). A job
        // whose lease was lost keeps what its new owner recorded (JobInterrupted).
        for attempt in 0..<5 where !state.withLock({ $0.leaseLost }) {
            do {
                try await engine.catalog.updateJob(snapshot)
                break
            } catch let error as CoffreError where error.code == .jobLeaseLost {
                engine.logger.error("\(error.message)")
                break
            } catch {
                engine.logger.error("recording the end of job \(id) failed (attempt \(attempt + 1)): \(error)")
                try? await Task.sleep(for: .milliseconds(200 << attempt))
            }
        }
        return snapshot
    }
}

/// Whether an error means "stopped because cancelled".
func isCancellation(_ error: any Error) -> Bool {
    error is CancellationError || (error as? CoffreError)?.code == .cancelled
}
