import CoffreCore
import Foundation
import Synchronization

/// A running job's record, changed by its steps and saved to the catalog as it goes.
final class JobContext: Sendable {
    private let runner: JobRunner
    private let state: Mutex<State>

    private struct State {
        var job: Job
        /// The catalog no longer takes this job's record from this runner.
        var leaseLost = false
    }

    init(runner: JobRunner, job: Job) {
        self.runner = runner
        self.state = Mutex(State(job: job))
    }

    var snapshot: Job { state.withLock { $0.job } }
    var id: String { state.withLock { $0.job.id } }

    /// Runs one named step, recording its timing and outcome.
    func step<T: Sendable>(_ name: String, _ body: () async throws -> T) async throws -> T {
        let index = state.withLock { s in
            s.job.steps.append(JobStep(name: name, startedAt: runner.clock.now()))
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
        let now = runner.clock.now()
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
        let now = runner.clock.now()
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
            try await runner.catalog.updateJob(snapshot)
        } catch let error as CoffreError where error.code == .jobLeaseLost {
            runner.logger.error("\(error.message): stopping it")
            state.withLock { $0.leaseLost = true }
            runner.stop(id)
        } catch {
            runner.logger.error("saving job \(id) failed: \(error)")
        }
    }

    /// Someone asked this job to stop (as opposed to the process stopping).
    func markCancelRequested() {
        state.withLock { $0.job.cancelRequested = true }
    }

    /// Saves progress, then reads back whether someone asked to cancel.
    func saveAndCheckCancelRequest() async -> Bool {
        await save()
        guard let stored = try? await runner.catalog.job(id: id), stored.cancelRequested else { return false }
        state.withLock { $0.job.cancelRequested = true }
        return true
    }

    /// Records how the job ended and saves it.
    func finish(_ outcome: Result<Void, any Error>) async -> Job {
        let now = runner.clock.now()
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
                try await runner.catalog.updateJob(snapshot)
                break
            } catch let error as CoffreError where error.code == .jobLeaseLost {
                runner.logger.error("\(error.message)")
                break
            } catch {
                runner.logger.error("recording the end of job \(id) failed (attempt \(attempt + 1)): \(error)")
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
