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
        let pipeline = RestorePipeline(store: store, fabric: fabric)
        return try await runner.launch(.restore, vm: key, lock: Self.itemLock(key), details: details) { job in
            try await pipeline.run(job, record: record, point: point, to: destination)
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
