public import CoffreCore
import Foundation
import Synchronization

/// A job this engine instance runs.
struct RunningJob: Sendable {
    let task: Task<Job, Never>
    let context: JobContext
}

extension Engine {
    /// Creates a job and runs `body` for it in the background.
    ///
    /// The job is inserted only if no in-progress job holds `lock` (one operation per item, B6;
    /// one discovery at a time, D2) — otherwise the matching seed error is thrown and nothing
    /// is recorded. `body` records steps through its `JobContext`; its error becomes the job's.
    /// - Returns: the job as first recorded.
    @discardableResult
    func launch(
        _ type: JobType, vm: VMKey?, lock: String?, details: [String: String] = [:],
        body: @escaping @Sendable (JobContext) async throws -> Void
    ) async throws -> Job {
        let job = Job(id: Job.makeID(at: clock.now()), type: type, vm: vm, startedAt: clock.now(),
                      owner: owner, details: details)
        if let holder = try await catalog.insertJob(job, lock: lock) {
            if let vm { throw CoffreError.anotherOperationInProgress(vm, job: holder.id) }
            throw CoffreError.discoveryInProgress()
        }
        let context = JobContext(engine: self, job: job)
        // The lock makes the task's own removal wait until it is registered.
        running.withLock { jobs in
            jobs[job.id] = RunningJob(task: Task { await self.execute(context, body) }, context: context)
        }
        return job
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
        return job
    }

    /// Asks a running job to stop (B7). Works for jobs of other processes sharing the catalog:
    /// they see the request within `monitorInterval`.
    @discardableResult
    public func cancel(jobID: String) async throws -> Job {
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

    /// Waits until a job ends and returns its final record.
    /// - Parameter onUpdate: called about every 200 ms with the job's current record.
    public func wait(for id: String, onUpdate: (@Sendable (Job) -> Void)? = nil) async throws -> Job {
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
        while true {
            guard let job = try await catalog.job(id: id) else { throw CoffreError.jobNotFound(id) }
            if job.status.isFinished { return job }
            onUpdate?(job)
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Jobs this instance is running now.
    public var runningJobIDs: [String] { running.withLock { Array($0.keys) } }

    /// Cancels every job this instance runs and waits for them to end (shutdown).
    public func cancelAllAndWait() async {
        let jobs = running.withLock { Array($0.values) }
        for job in jobs { job.task.cancel() }
        for job in jobs { _ = await job.task.value }
    }

    /// Marks jobs whose owner process or node is gone as failed (`JobInterrupted`) and removes what
    /// they left: a backup's snapshot and any point it stored but never committed, a
    /// registration's `registering` state. Nothing of an interrupted job stays visible.
    public func recoverInterruptedJobs() async throws {
        for job in try await catalog.jobs(JobFilter(status: .inProgress)) where await !ownerIsAlive(job.owner) {
            logger.warning("job \(job.id) was interrupted; cleaning up")
            let left = try await cleanUpInterrupted(job)
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
            try await catalog.updateJob(failed)
        }
    }

    /// - Returns: what the job left that cleanup must not remove (an instant restore's VM), in words.
    private func cleanUpInterrupted(_ job: Job) async throws -> String? {
        guard let vm = job.vm else { return nil }
        switch job.type {
        case .backup:
            if let record = try await catalog.vm(vm), let fabric = try? fabric(named: record.fabric) {
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

    /// Expires points the store holds for `item` that the catalog never committed: a backup
    /// killed between writing its manifest and committing. Call only when no backup of the item runs.
    func expireUncommittedPoints(of item: ProtectedItem) async throws {
        let committed = Set(try await catalog.points(item: item.id).map(\.id))
        for point in try await store.storedPoints(item: item.id) where !committed.contains(point.id) {
            logger.warning("expiring uncommitted point \(point.id) of \(item.vm)")
            try await store.expirePoint(point.id)
        }
    }
}

/// A running job's record, changed by its steps and saved to the catalog as it goes.
final class JobContext: Sendable {
    let engine: Engine
    private let state: Mutex<State>

    private struct State {
        var job: Job
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

    /// Saves the record; a failed save is logged, never fatal to the job.
    func save() async {
        do {
            try await engine.catalog.updateJob(snapshot)
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
        // A finished job must be recorded: retry a few times (the database may be busy).
        for attempt in 0..<5 {
            do {
                try await engine.catalog.updateJob(snapshot)
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
