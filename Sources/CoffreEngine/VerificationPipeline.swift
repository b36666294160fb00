import CoffreCore
import Foundation

/// One verification of one point (a Verify job): *data* reads every block back and checks its hash;
/// *boot* runs the point as an isolated VM until its guest answers. What was checked is
/// recorded on the point.
struct VerificationPipeline: Sendable {
    let catalog: any Catalog
    let store: any PointStore
    let clock: any TimeSource
    let fabric: any Fabric

    /// The checks, one after the other; what was checked is recorded on the point, a check that
    /// fails fails the job with its code. A failure of the fabric itself (it cannot start the VM)
    /// fails the job too, but says nothing against the point: what passed before it is recorded.
    func run(
        _ job: JobContext, record: VMRecord, point: RecoveryPointRecord, request: Engine.VerificationRequest, skipped: String?
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
                    done.append(try await verifyBoot(job, record: record, point: point, request: request))
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
        _ job: JobContext, record: VMRecord, point: RecoveryPointRecord, request: Engine.VerificationRequest
    ) async throws -> String {
        let started = ContinuousClock.now
        let instant = try await job.step("Start isolated VM") {
            let instant = try await fabric.makeInstantRestore(InstantRestoreRequest(
                name: Self.verificationVMName(job.id), original: RestorePipeline.asTaken(record.vm, point), definition: point.definition,
                purpose: .verification, job: job.id) { try await store.openPoint(point.id) })
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
}
