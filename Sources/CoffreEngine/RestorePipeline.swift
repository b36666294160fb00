import CoffreCore
import Foundation

/// One restore of one point (X1, X2): into a folder, through the fabric (a new VM, over the
/// original's disks), or instantly (a VM started on the point's disks while they are copied).
/// Every block read is verified against its hash by the store.
struct RestorePipeline: Sendable {
    let store: any PointStore
    let fabric: any Fabric

    func run(_ job: JobContext, record: VMRecord, point: RecoveryPointRecord, to destination: RestoreDestination) async throws {
        let total = point.disks.reduce(0) { $0 + $1.size }
        switch destination {
        case .folder(let directory, let format):
            let files = try await restoreData(job, point: point, into: directory, format: format, total: total)
            job.setDetail("files", files.joined(separator: ","))
        case .newVM(let name):
            try await restoreThroughFabric(job, point: point, total: total,
                                           request: .newVM(name: name, original: Self.asTaken(record.vm, point),
                                                           definition: point.definition))
        case .replaceDisks:
            try await restoreThroughFabric(job, point: point, total: total, request: .replaceDisks(record.key))
        case .instant(let name):
            try await restoreInstantly(job, record: record, point: point, name: name, total: total)
        }
    }

    private func restoreThroughFabric(
        _ job: JobContext, point: RecoveryPointRecord, total: Int64, request: RestoreRequest
    ) async throws {
        let target = try await job.step("Prepare restore target") {
            let target = try await fabric.makeRestoreTarget(request)
            job.note(target.directory)
            return target
        }
        do {
            _ = try await restoreData(job, point: point, into: target.directory, format: target.format, total: total)
            try job.checkCancelled()
            let restored = try await job.step("Attach disks") {
                let restored = try await target.commit()
                job.note((["disks are now \(restored.key)'s"] + restored.notes).joined(separator: "; "))
                return restored
            }
            Self.record(restored, on: job)
        } catch {
            await target.abort()
            throw error
        }
    }

    /// Starts the VM on the point's disks, copies them while it runs, then switches it to the copies.
    /// A failure or a cancel before the switch removes the VM and every file made for it.
    private func restoreInstantly(
        _ job: JobContext, record: VMRecord, point: RecoveryPointRecord, name: String, total: Int64
    ) async throws {
        let started = ContinuousClock.now
        let instant = try await job.step("Prepare instant restore") {
            try await fabric.makeInstantRestore(InstantRestoreRequest(
                name: name, original: Self.asTaken(record.vm, point), definition: point.definition, purpose: .restore,
                job: job.id
            ) { try await store.openPoint(point.id) })
        }
        var running = false
        do {
            try await job.step("Start VM on the point's disks") {
                let id = try await instant.start()
                running = true
                job.setDetail("instantVMID", id)
                let seconds = (ContinuousClock.now - started).inSeconds
                job.note("\(name) runs \(formatSeconds(seconds)) after the job started; its disks are read from the point")
                job.setDetail("runningAfterSeconds", String((seconds * 1000).rounded() / 1000))
            }
            try job.checkCancelled()
            try await job.step("Copy disks while the VM runs") {
                job.setProgress(JobProgress(totalBytes: total))
                try await instant.copy { copied, total in
                    job.setProgress(JobProgress(totalBytes: total, scannedBytes: copied, readBytes: copied, writtenBytes: copied))
                }
                job.note("\(ByteSize.format(total)) copied", bytes: total)
            }
            try job.checkCancelled()
            let restored = try await job.step("Switch to the local disks") {
                let restored = try await instant.finish()
                job.note((["\(restored.key) runs on its own disks; the point is no longer read"] + restored.notes).joined(separator: "; "))
                return restored
            }
            Self.record(restored, on: job)
        } catch where running && isCancellation(error) && !job.snapshot.cancelRequested {
            // The process is stopping (SIGTERM), not the user cancelling: the VM may already
            // hold its users' writes, so it is kept, as after a crash, and the job says what is left.
            var interrupted = CoffreError.jobInterrupted(job.id)
            interrupted.message += ". \(await instant.detach())"
            interrupted.workaround = "Keep what you need from the VM, remove it, and run the instant restore again"
            throw interrupted
        } catch {
            await instant.abort()
            throw error
        }
    }

    /// The VM as the point holds it: its disks are the point's (a disk added or removed since
    /// is not the point's business).
    static func asTaken(_ vm: DiscoveredVM, _ point: RecoveryPointRecord) -> DiscoveredVM {
        var vm = vm
        vm.disks = point.disks
        return vm
    }

    /// Records the restored VM, where its disks are now (never a staging folder or an overlay),
    /// and what the fabric changed in its definition.
    private static func record(_ restored: RestoredVM, on job: JobContext) {
        job.setDetail("restoredVM", restored.key.description)
        job.setDetail("files", restored.files.joined(separator: ","))
        if !restored.notes.isEmpty { job.setDetail("notes", restored.notes.joined(separator: "; ")) }
    }

    /// Writes the point's disks into `directory`; returns their files.
    private func restoreData(
        _ job: JobContext, point: RecoveryPointRecord, into directory: String, format: DiskFormat, total: Int64
    ) async throws -> [String] {
        try await job.step("Restore data") {
            job.setProgress(JobProgress(totalBytes: total))
            let files = try await store.restorePoint(point.id, to: directory, format: format, overwrite: false) { progress in
                job.setProgress(JobProgress(totalBytes: total, scannedBytes: progress.scannedBytes,
                                            readBytes: progress.readBytes, writtenBytes: progress.writtenBytes))
            }
            job.note("\(files.count) \(format.rawValue) disks, \(ByteSize.format(total)), every block verified", bytes: total)
            return files
        }
    }
}
