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
            return try await launch(.verify, vm: record.key, lock: lock, details: details) { job in
                try await self.runVerification(job, record: record, point: point, request: request, fabric: fabric, skipped: skipped)
            }
        } catch let error as CoffreError where boots && error.code == .anotherOperationInProgress {
            let holder = try await catalog.jobs(JobFilter(type: .verify, status: .inProgress))
                .first { $0.details["verifyVM"] != nil }
            throw CoffreError(.anotherOperationInProgress,
                              "A boot check already runs on the fabric \(fabric.name)\(holder.map { " (job \($0.id), \($0.vm?.description ?? "?"))" } ?? ""): one runs at a time, so that isolated VMs never crowd the host",
                              workaround: "Wait for it to end\(holder.map { ", or cancel it with `coffre job cancel \($0.id)`" } ?? "")")
        }
    }

    /// The checks, one after the other; what was checked is recorded on the point, a check that
    /// fails fails the job with its code. A failure of the fabric itself (it cannot start the VM)
    /// fails the job too, but says nothing against the point: what passed before it is recorded.
    private func runVerification(
        _ job: JobContext, record: VMRecord, point: RecoveryPointRecord, request: VerificationRequest, fabric: any Fabric,
        skipped: String?
    ) async throws {
        var done: [String] = []
        var checked: [VerificationCheck] = []
        var failure: CoffreError?
        var infrastructure: (any Error)?
        if request.checks.contains(.data) {
            do {
                done.append(try await verifyData(job, point: point))
            } catch let error as CoffreError where [.chunkDamaged, .chunkMissing, .indexDamaged].contains(error.code) {
                failure = .dataVerificationFailed(point.id, vm: record.key, cause: error)
            }
            checked.append(.data)
        }
        if let skipped { job.skip("Boot check", because: skipped) }
        if request.checks.contains(.boot) {
            if failure != nil {
                job.skip("Boot check", because: "the data check failed")
            } else {
                job.setDetail("verifyVM", Self.verificationVMName(job.id))
                do {
                    done.append(try await verifyBoot(job, record: record, point: point, request: request, fabric: fabric))
                    checked.append(.boot)
                } catch let error as CoffreError where error.code == .bootVerificationFailed {
                    failure = .bootVerificationFailed(point.id, vm: record.key, detail: error.message)
                    checked.append(.boot)
                } catch where !isCancellation(error) {
                    infrastructure = error
                }
            }
        }
        try job.checkCancelled()
        if !checked.isEmpty {
            let verification = PointVerification(
                at: clock.now(), checks: checked, succeeded: failure == nil, job: job.id,
                detail: done.joined(separator: "; "), error: failure.map(ErrorInfo.init))
            try await catalog.recordVerification(verification, point: point.id)
            job.setDetail("verified", failure == nil ? "passed" : "failed")
        }
        if let failure { throw failure }
        if let infrastructure { throw infrastructure }
    }

    /// The isolated VM of a boot check: named after its job.
    static func verificationVMName(_ job: String) -> String { "coffre-verify-" + job.suffix(8) }

    /// Reads every block of the point and checks its hash.
    private func verifyData(_ job: JobContext, point: RecoveryPointRecord) async throws -> String {
        try await job.step("Verify data") {
            let total = point.disks.reduce(0) { $0 + $1.size }
            job.setProgress(JobProgress(totalBytes: total))
            let result = try await store.verifyPoint(point.id) { progress in
                job.setProgress(JobProgress(totalBytes: total, scannedBytes: progress.scannedBytes, readBytes: progress.readBytes))
            }
            let text = "\(point.disks.count) disks, \(ByteSize.format(result.scannedBytes)) read back from \(ByteSize.format(result.readBytes)) stored, every block's hash checked"
            job.note(text, bytes: result.readBytes)
            return text
        }
    }

    /// Runs the point as an isolated VM until the guest answers (and the command succeeds), then removes it.
    private func verifyBoot(
        _ job: JobContext, record: VMRecord, point: RecoveryPointRecord, request: VerificationRequest, fabric: any Fabric
    ) async throws -> String {
        let started = ContinuousClock.now
        let instant = try await job.step("Start isolated VM") {
            let instant = try await fabric.makeInstantRestore(InstantRestoreRequest(
                name: Self.verificationVMName(job.id), original: Self.asTaken(record.vm, point), definition: point.definition,
                purpose: .verification, job: job.id) { try await self.store.openPoint(point.id) })
            do {
                job.setDetail("instantVMID", try await instant.start())
            } catch {
                await instant.abort()
                throw error
            }
            job.note("no network, no shared disks or folders; its disks read from the point")
            return instant
        }
        do {
            let text = try await job.step("Boot check") {
                let answer = try await instant.checkGuest(command: request.bootCommand,
                                                          timeout: .seconds(request.bootTimeoutSeconds))
                let text = "\(answer), \(formatSeconds((ContinuousClock.now - started).inSeconds)) after the start"
                job.note(text)
                return text
            }
            try await job.step("Remove isolated VM") { await instant.abort() }
            return text
        } catch {
            await instant.abort()
            throw error
        }
    }

    /// Creates the Verify jobs that are due at `now`: for each protected item whose policy
    /// verifies on a schedule, its newest point, once per slot (missed slots collapse into one).
    /// - Returns: the jobs started.
    @discardableResult
    public func runDueVerifications() async throws -> [Job] {
        let now = clock.now()
        var started: [Job] = []
        var policies: [String: Policy] = [:]
        for policy in try await catalog.policies() { policies[policy.name] = policy }
        for item in try await catalog.items() where item.state == .protected {
            guard let verification = policies[item.policy]?.verification,
                  let slot = verification.schedule.latestSlot(atOrBefore: now),
                  slot > (item.lastVerificationSlot ?? item.protectedAt)
            else { continue }
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
            try await catalog.recordVerificationSlot(slot, item: item.id)
        }
        return started
    }
}
