public import CoffreCore
import Foundation

extension Engine {
    /// How a Verify job checks a point: the checks, and for `boot` what to run in the guest
    /// and how long to wait.
    public struct VerificationRequest: Sendable, Equatable {
        public var checks: [VerificationCheck]
        public var bootCommand: String?
        public var bootTimeoutSeconds: Int

        public init(checks: [VerificationCheck], bootCommand: String? = nil,
                    bootTimeoutSeconds: Int = VerificationPolicy.defaultBootTimeoutSeconds) {
            self.checks = Array(Set(checks)).sorted()
            self.bootCommand = bootCommand
            self.bootTimeoutSeconds = bootTimeoutSeconds
        }

        public init(_ policy: VerificationPolicy) {
            self.init(checks: policy.checks, bootCommand: policy.bootCommand, bootTimeoutSeconds: policy.bootTimeoutSeconds)
        }
    }

    /// Queues a Verify job of one of a VM's points (its newest when `pointID` is nil) and starts
    /// it here at once when this node has a free place (`maxConcurrentVerifications`): *data*
    /// reads every block and checks it against its hash; *boot* runs the point as an isolated
    /// VM until its guest agent answers or the check command succeeds, then removes it. The
    /// outcome is recorded on the point; a failed check fails the job with its error code.
    ///
    /// The item's backups and restores go on meanwhile (a verification only reads); two
    /// verifications of one item do not run at once, and one boot check runs at a time per
    /// fabric (each starts a VM as large as the original, on the originals' host).
    /// - Returns: the job as recorded once this engine tried to claim it (InProgress or Queued).
    public func verify(_ name: String, point pointID: String?, _ request: VerificationRequest) async throws -> Job {
        try VerificationPolicy.validate(checks: request.checks, bootCommand: request.bootCommand,
                                        bootTimeoutSeconds: request.bootTimeoutSeconds)
        let record = try await resolveVM(name)
        guard let item = try await catalog.item(for: record.key) else { throw CoffreError.notProtected(record.key) }
        if item.state == .softDeleted { throw CoffreError.itemSoftDeleted(record.key, purgeAfter: Self.day(item.purgeAfter)) }
        let point: RecoveryPointRecord
        if let pointID {
            guard let found = try await catalog.point(id: pointID), found.item == item.id else {
                throw CoffreError.recoveryPointNotFound(pointID, vm: record.key)
            }
            point = found
        } else {
            guard let newest = try await catalog.points(item: item.id).last else { throw CoffreError.noRecoveryPoint(record.key) }
            point = newest
        }
        let fabric = try fabric(named: record.fabric)
        if request.checks.contains(.boot), !fabric.runsPoints {
            throw CoffreError(.restoreNotSupported, "The fabric \(fabric.name) cannot run a recovery point, so it cannot boot-check one",
                              workaround: "Verify the point's data only (--checks data)")
        }
        let job = try await enqueueVerification(record: record, point: point, request: request, fabric: fabric,
                                                details: ["trigger": "on-demand"])
        await runner.claim(jobID: job.id)
        if let local = runner.snapshot(of: job.id) { return local }
        return try await catalog.job(id: job.id) ?? job
    }

    /// Records a queued Verify job; its details say all it checks, for whichever node claims it.
    private func enqueueVerification(
        record: VMRecord, point: RecoveryPointRecord, request: VerificationRequest, fabric: any Fabric,
        details: [String: String]
    ) async throws -> Job {
        let boots = request.checks.contains(.boot)
        let lock = boots ? "boot-check:\(fabric.name)" : "verify:\(record.key)"
        let details = details.merging(request.details) { $1 }.merging(["point": point.id, "fabric": fabric.name]) { $1 }
        do {
            return try await runner.enqueue(.verify, vm: record.key, lock: lock, details: details)
        } catch let error as CoffreError where boots && error.code == .anotherOperationInProgress {
            var holder: Job?
            for status in [JobStatus.inProgress, .queued] where holder == nil {
                holder = try await catalog.jobs(JobFilter(type: .verify, status: status)).first {
                    $0.details["fabric"] == fabric.name && VerificationRequest(details: $0.details)?.checks.contains(.boot) == true
                }
            }
            throw CoffreError(.anotherOperationInProgress,
                              "A boot check already runs or waits on the fabric \(fabric.name)\(holder.map { " (job \($0.id), \($0.vm?.description ?? "?"))" } ?? ""): one runs at a time, so that isolated VMs never crowd the host",
                              workaround: "Wait for it to end\(holder.map { ", or cancel it with `coffre job cancel \($0.id)`" } ?? "")")
        }
    }

    /// Runs a claimed Verify job as its record describes it. The point may have expired while
    /// the job waited: the job then fails with PointNotFound.
    func runQueuedVerification(_ job: JobContext) async throws {
        let queued = job.snapshot
        guard let key = queued.vm, let pointID = queued.details["point"],
              let request = VerificationRequest(details: queued.details) else {
            throw CoffreError(.internalError, "Verify job \(queued.id) does not say what to check", workaround: "Report it with the job's id")
        }
        guard let record = try await catalog.vm(key) else { throw CoffreError.vmNotFound(key.description) }
        guard let point = try await catalog.point(id: pointID) else { throw CoffreError.recoveryPointNotFound(pointID, vm: key) }
        let pipeline = VerificationPipeline(catalog: catalog, store: store, clock: clock, fabric: try fabric(named: record.fabric))
        try await pipeline.run(job, record: record, point: point, request: request, skipped: queued.details["skipped"])
    }

    /// Queues the Verify jobs that are due at `now`: for each protected item whose policy
    /// verifies on a schedule, its newest point, once per slot (missed slots collapse into one).
    /// The nodes' runners claim them as backups are claimed.
    /// - Returns: the jobs queued.
    @discardableResult
    public func queueDueVerifications() async throws -> [Job] {
        let due = Scheduler.dueVerifications(items: try await catalog.items(), policies: try await catalog.policies(), at: clock.now())
        var queued: [Job] = []
        for due in due {
            // The lease may lapse during a long pass: a node that no longer leads queues nothing.
            guard await mayLead() else { break }
            let item = due.item
            guard let policy = try await catalog.policy(named: item.policy), let verification = policy.verification else { continue }
            do {
                // No point yet: nothing to verify in this slot. A leader that died between
                // queuing the slot's job and recording the slot left the job: not queued twice.
                if let point = try await catalog.points(item: item.id).last, let record = try await catalog.vm(item.vm),
                   try await !slotQueued(.verify, of: due) {
                    var request = VerificationRequest(verification)
                    let fabric = try fabric(named: record.fabric)
                    var details = ["trigger": "scheduled", "slot": Self.instant(due.slot)]
                    if request.checks.contains(.boot), !fabric.runsPoints {
                        request.checks.removeAll { $0 == .boot }
                        details["skipped"] = "the fabric \(fabric.name) cannot run a recovery point"
                    }
                    if !request.checks.isEmpty {
                        queued.append(try await enqueueVerification(record: record, point: point, request: request,
                                                                    fabric: fabric, details: details))
                    } else {
                        logger.warning("scheduled verification of \(item.vm): nothing to check, \(details["skipped"] ?? "")")
                    }
                }
            } catch let error as CoffreError where error.code == .anotherOperationInProgress {
                logger.info("scheduled verification of \(item.vm) waits: \(error.message)")
                continue
            } catch {
                logger.error("scheduled verification of \(item.vm) could not be queued: \(error)")
            }
            // Only the slot: the item may have changed meanwhile (stopped, moved to another policy).
            try await catalog.recordVerificationSlot(due.slot, item: item.id)
        }
        return queued
    }
}

extension Engine.VerificationRequest {
    /// The request as a queued job's details: `checks`, and for a boot check its command and timeout.
    var details: [String: String] {
        var details = ["checks": checks.map(\.rawValue).joined(separator: ",")]
        if checks.contains(.boot) {
            details["bootTimeoutSeconds"] = String(bootTimeoutSeconds)
            if let bootCommand { details["bootCommand"] = bootCommand }
        }
        return details
    }

    /// The request a queued job's details describe (nil: they name no known check).
    init?(details: [String: String]) {
        guard let text = details["checks"],
              let checks = try? text.split(separator: ",").map({ try VerificationCheck(parsing: String($0)) }),
              !checks.isEmpty else { return nil }
        self.init(checks: checks, bootCommand: details["bootCommand"],
                  bootTimeoutSeconds: details["bootTimeoutSeconds"].flatMap { Int($0) } ?? VerificationPolicy.defaultBootTimeoutSeconds)
    }
}
