public import CoffreCore
import Foundation

/// The job runner's operations the application sees (`JobRunner` does the work).
extension Engine {
    /// Claims queued jobs up to this node's free places (`maxConcurrentBackups`, and the
    /// fabrics' `fabricBackupLimits` counted on every node) and runs them. `coffre serve`'s
    /// runner calls it every `claimInterval` and whenever one of its jobs ends.
    public func runQueuedJobs() async {
        await runner.claimQueued()
    }

    /// Claims, of `jobs`, those still queued, as places allow (`coffre scheduler --once` runs
    /// the backups it queued).
    public func claim(_ jobs: [Job]) async {
        for job in jobs { await runner.claim(jobID: job.id) }
    }

    /// Asks a job to stop (B7): a queued one ends Cancelled at once and never runs; a running
    /// one of any process sharing the catalog sees the request within `monitorInterval`.
    @discardableResult
    public func cancel(jobID: String) async throws -> Job {
        try await runner.cancel(jobID: jobID)
    }

    /// Waits until a job ends and returns its final record. A job still queued is claimed by
    /// this engine when a place is free (a command-line process runs what it queued), unless
    /// another node claims it first.
    /// - Parameter onUpdate: called about every 200 ms with the job's current record.
    public func wait(for id: String, onUpdate: (@Sendable (Job) -> Void)? = nil) async throws -> Job {
        try await runner.wait(for: id, onUpdate: onUpdate)
    }

    /// Jobs this instance is running now.
    public var runningJobIDs: [String] { runner.runningJobIDs }

    /// Cancels every job this instance runs and waits for them to end (shutdown); with
    /// `stopClaiming`, this engine claims no queued job any more.
    public func cancelAllAndWait(stopClaiming: Bool = false) async {
        await runner.cancelAllAndWait(stopClaiming: stopClaiming)
    }

    /// What a claimed job does, from its record (it may have been queued by another node).
    func work(of job: Job) -> JobBody {
        switch job.type {
        case .backup:
            return { context in try await self.runQueuedBackup(context) }
        case .verify:
            return { context in try await self.runQueuedVerification(context) }
        default:
            return { _ in throw CoffreError(.internalError, "A \(job.type.rawValue) job cannot be queued",
                                            workaround: "Report it with the job's id") }
        }
    }
}
