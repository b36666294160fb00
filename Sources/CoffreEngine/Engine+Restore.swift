public import CoffreCore
import Foundation

/// Where a restore writes a point's disks (X1).
public enum RestoreDestination: Sendable, Equatable {
    /// Raw sparse image files, or qcow2 images, in a folder.
    case folder(String, format: DiskFormat = .raw)
    /// A new VM in the original VM's fabric.
    case newVM(name: String)
    /// Over the original VM's disks; `confirmed` must be true.
    case replaceDisks(confirmed: Bool)
    /// A new VM started at once on the point's disks, which the vault serves while they are
    /// copied to the fabric; the VM then switches to its copies (instant restore).
    case instant(name: String)
}

extension Engine {
    /// Starts a Restore job of one point of a VM (X1, X2): byte-identical sparse disks, every
    /// block verified. One operation per item (B6). A soft-deleted item's points need undelete first.
    public func restore(_ name: String, point pointID: String, to destination: RestoreDestination) async throws -> Job {
        let (record, point) = try await restorablePoint(name, pointID)
        let key = record.key
        if case .replaceDisks(false) = destination { throw CoffreError.confirmationRequired("Replacing the disks of \(key)") }
        if case .folder(_, let format) = destination {
            for disk in point.disks { try format.check(disk: disk.name, size: disk.size) }
        }
        let fabric = try fabric(named: record.fabric)
        var details = ["point": point.id, "target": Self.describe(destination)]
        if case .instant(let name) = destination { details["instantVM"] = name }
        return try await launch(.restore, vm: key, lock: Self.itemLock(key), details: details) { job in
            let total = point.disks.reduce(0) { $0 + $1.size }
            switch destination {
            case .folder(let directory, let format):
                let files = try await self.restoreData(job, point: point, into: directory, format: format, total: total)
                job.setDetail("files", files.joined(separator: ","))
            case .newVM(let name):
                try await self.restoreThroughFabric(job, point: point, total: total,
                                                    request: .newVM(name: name, original: Self.asTaken(record.vm, point),
                                                                    definition: point.definition),
                                                    fabric: fabric)
            case .replaceDisks:
                try await self.restoreThroughFabric(job, point: point, total: total,
                                                    request: .replaceDisks(key), fabric: fabric)
            case .instant(let name):
                try await self.restoreInstantly(job, record: record, point: point, name: name, total: total, fabric: fabric)
            }
        }
    }

    /// Opens a point of a VM for random-access reads of its disks (a mount, a browse of its
    /// files): the checks of a restore, without a job. The caller closes the reader.
    public func openPoint(_ name: String, point pointID: String) async throws -> any PointDisks {
        let (_, point) = try await restorablePoint(name, pointID)
        return try await store.openPoint(point.id)
    }

    /// Lists a folder of a point's file systems (`/<disk>/part<N>/…`), as `coffre files` does.
    public func listFiles(_ name: String, point pointID: String, path: String) async throws -> PointListing {
        let (browser, point) = try await browsablePoint(name, pointID)
        return try await browser.list(point: point.id, path: path) { try await self.store.openPoint(point.id) }
    }

    /// A file of a point, or a folder as a tar archive, to download.
    public func downloadFiles(_ name: String, point pointID: String, path: String) async throws -> PointDownload {
        let (browser, point) = try await browsablePoint(name, pointID)
        return try await browser.download(point: point.id, path: path) { try await self.store.openPoint(point.id) }
    }

    private func browsablePoint(_ name: String, _ pointID: String) async throws -> (any PointFileBrowser, RecoveryPointRecord) {
        guard let browser = fileBrowser else {
            throw CoffreError(.fuseUnavailable, "This server does not read the files of points",
                              workaround: "Run coffre serve as root on a host with FUSE (/dev/fuse), or use `coffre files` on the vault's host")
        }
        let (_, point) = try await restorablePoint(name, pointID)
        return (browser, point)
    }

    /// The VM and its point, when the point may be read: the VM is protected (or was, its
    /// data retained), not soft-deleted (its points need undelete first), and the point is its own.
    private func restorablePoint(_ name: String, _ pointID: String) async throws -> (VMRecord, RecoveryPointRecord) {
        let record = try await resolveVM(name)
        let key = record.key
        guard let item = try await catalog.item(for: key) else { throw CoffreError.notProtected(key) }
        if item.state == .softDeleted { throw CoffreError.itemSoftDeleted(key, purgeAfter: Self.day(item.purgeAfter)) }
        guard let point = try await catalog.point(id: pointID), point.item == item.id else {
            throw CoffreError.recoveryPointNotFound(pointID, vm: key)
        }
        return (record, point)
    }

    private func restoreThroughFabric(
        _ job: JobContext, point: RecoveryPointRecord, total: Int64, request: RestoreRequest, fabric: any Fabric
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
        _ job: JobContext, record: VMRecord, point: RecoveryPointRecord, name: String, total: Int64, fabric: any Fabric
    ) async throws {
        let started = ContinuousClock.now
        let instant = try await job.step("Prepare instant restore") {
            try await fabric.makeInstantRestore(InstantRestoreRequest(
                name: name, original: Self.asTaken(record.vm, point), definition: point.definition, purpose: .restore,
                job: job.id
            ) { try await self.store.openPoint(point.id) })
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

    static func describe(_ destination: RestoreDestination) -> String {
        switch destination {
        case .folder(let path, .raw): "folder \(path)"
        case .folder(let path, let format): "folder \(path) (\(format.rawValue))"
        case .newVM(let name): "new VM \(name)"
        case .replaceDisks: "replace disks"
        case .instant(let name): "instant new VM \(name)"
        }
    }
}
