public import CoffreCore
public import Foundation

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
    /// verifications of one item do not run at once.
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
        let fabric = request.checks.contains(.boot) ? try fabric(named: record.fabric) : nil
        return try await startVerification(record: record, point: point, request: request, fabric: fabric,
                                           trigger: "on-demand")
    }

    private func startVerification(
        record: VMRecord, point: RecoveryPointRecord, request: VerificationRequest, fabric: (any Fabric)?, trigger: String
    ) async throws -> Job {
        let details = ["point": point.id, "checks": request.checks.map(\.rawValue).joined(separator: ","), "trigger": trigger]
        return try await launch(.verify, vm: record.key, lock: "verify:\(record.key)", details: details) { job in
            if fabric != nil { job.setDetail("verifyVM", Self.verificationVMName(job.id)) }
            var done: [String] = []
            var failure: CoffreError?
            if request.checks.contains(.data) {
                do {
                    done.append(try await self.verifyData(job, point: point))
                } catch let error as CoffreError where [.chunkDamaged, .chunkMissing, .indexDamaged].contains(error.code) {
                    failure = .dataVerificationFailed(point.id, vm: record.key, cause: error)
                }
            }
            if request.checks.contains(.boot), let fabric {
                if failure != nil {
                    job.skip("Boot check", because: "the data check failed")
                } else {
                    do {
                        done.append(try await self.verifyBoot(job, record: record, point: point, request: request, fabric: fabric))
                    } catch let error as CoffreError where error.code == .bootVerificationFailed {
                        failure = .bootVerificationFailed(point.id, vm: record.key, detail: error.message)
                    }
                }
            }
            try job.checkCancelled()
            let verification = PointVerification(
                at: self.clock.now(), checks: request.checks, succeeded: failure == nil, job: job.id,
                detail: done.joined(separator: "; "), error: failure.map(ErrorInfo.init))
            try await self.catalog.recordVerification(verification, point: point.id)
            job.setDetail("verified", failure == nil ? "passed" : "failed")
            if let failure { throw failure }
        }
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
                name: Self.verificationVMName(job.id), original: record.vm, definition: point.definition,
                purpose: .verification, job: job.id) { try await self.store.openPoint(point.id) })
            do {
                try await instant.start()
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
        for var item in try await catalog.items() where item.state == .protected {
            guard let verification = policies[item.policy]?.verification,
                  let slot = verification.schedule.latestSlot(atOrBefore: now),
                  slot > (item.lastVerificationSlot ?? item.protectedAt)
            else { continue }
            do {
                // No point yet: nothing to verify in this slot.
                if let point = try await catalog.points(item: item.id).last, let record = try await catalog.vm(item.vm) {
                    let request = VerificationRequest(verification)
                    let fabric = request.checks.contains(.boot) ? try fabric(named: record.fabric) : nil
                    started.append(try await startVerification(record: record, point: point, request: request,
                                                               fabric: fabric, trigger: "scheduled"))
                }
            } catch let error as CoffreError where error.code == .anotherOperationInProgress {
                logger.info("scheduled verification of \(item.vm) waits: \(error.message)")
                continue
            } catch {
                logger.error("scheduled verification of \(item.vm) could not start: \(error)")
            }
            item.lastVerificationSlot = slot
            try await catalog.saveItem(item)
        }
        return started
    }
}
