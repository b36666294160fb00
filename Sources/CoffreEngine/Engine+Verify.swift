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

    /// Starts a Verify job of one of a VM's points (its newest when `pointID` is nil): *data*
    /// reads every block and checks it against its hash; *boot* runs the point as an isolated
    /// VM until its guest agent answers or the check command succeeds, then removes it. The
    /// outcome is recorded on the point; a failed check fails the job with its error code.
    ///
    /// The item's backups and restores go on meanwhile (a verification only reads); two
    /// verifications of one item do not run at once, and one boot check runs at a time per
    /// fabric (each starts a VM as large as the original, on the originals' host).
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
        return try await startVerification(record: record, point: point, request: request, fabric: fabric, trigger: "on-demand")
    }

    private func startVerification(
        record: VMRecord, point: RecoveryPointRecord, request: VerificationRequest, fabric: any Fabric, trigger: String,
        skipped: String? = nil
    ) async throws -> Job {
        let details = ["point": point.id, "checks": request.checks.map(\.rawValue).joined(separator: ","), "trigger": trigger]
        let boots = request.checks.contains(.boot)
        let lock = boots ? "boot-check:\(fabric.name)" : "verify:\(record.key)"
        do {
            let pipeline = VerificationPipeline(catalog: catalog, store: store, clock: clock, fabric: fabric)
            return try await runner.launch(.verify, vm: record.key, lock: lock, details: details) { job in
                try await pipeline.run(job, record: record, point: point, request: request, skipped: skipped)
            }
        } catch let error as CoffreError where boots && error.code == .anotherOperationInProgress {
            let holder = try await catalog.jobs(JobFilter(type: .verify, status: .inProgress))
                .first { $0.details["verifyVM"] != nil }
            throw CoffreError(.anotherOperationInProgress,
                              "A boot check already runs on the fabric \(fabric.name)\(holder.map { " (job \($0.id), \($0.vm?.description ?? "?"))" } ?? ""): one runs at a time, so that isolated VMs never crowd the host",
                              workaround: "Wait for it to end\(holder.map { ", or cancel it with `coffre job cancel \($0.id)`" } ?? "")")
        }
    }

    /// Creates the Verify jobs that are due at `now`: for each protected item whose policy
    /// verifies on a schedule, its newest point, once per slot (missed slots collapse into one).
    /// - Returns: the jobs started.
    @discardableResult
    public func runDueVerifications() async throws -> [Job] {
        let due = Scheduler.dueVerifications(items: try await catalog.items(), policies: try await catalog.policies(), at: clock.now())
        var started: [Job] = []
        for due in due {
            let item = due.item
            guard let policy = try await catalog.policy(named: item.policy), let verification = policy.verification else { continue }
            do {
                // No point yet: nothing to verify in this slot.
                if let point = try await catalog.points(item: item.id).last, let record = try await catalog.vm(item.vm) {
                    var request = VerificationRequest(verification)
                    let fabric = try fabric(named: record.fabric)
                    var skipped: String?
                    if request.checks.contains(.boot), !fabric.runsPoints {
                        request.checks.removeAll { $0 == .boot }
                        skipped = "the fabric \(fabric.name) cannot run a recovery point"
                    }
                    if !request.checks.isEmpty {
                        started.append(try await startVerification(record: record, point: point, request: request,
                                                                   fabric: fabric, trigger: "scheduled", skipped: skipped))
                    } else {
                        logger.warning("scheduled verification of \(item.vm): nothing to check, \(skipped ?? "")")
                    }
                }
            } catch let error as CoffreError where error.code == .anotherOperationInProgress {
                logger.info("scheduled verification of \(item.vm) waits: \(error.message)")
                continue
            } catch {
                logger.error("scheduled verification of \(item.vm) could not start: \(error)")
            }
            // Only the slot: the item may have changed meanwhile (stopped, moved to another policy).
            try await catalog.recordVerificationSlot(due.slot, item: item.id)
        }
        return started
    }
}
