public import CoffreCore
import Foundation

extension Engine {
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
        let lost = runner.lostJobs(jobs.filter { $0.owner == owner })
        for job in jobs {
            if job.owner == owner {
                guard lost.contains(job.id) else { continue }
            } else if await membership.ownerIsAlive(job.owner) {
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

