public import CoffreCore

extension Vault: PointStore {
    public func backupPoint(item: String, disks: [any BlockDevice], progress: ProgressHandler?) async throws -> StoredPoint {
        try await backup(item: item, disks: disks, progress: progress).stored
    }

    public func restorePoint(
        _ id: String, to directory: String, format: DiskFormat, overwrite: Bool, progress: ProgressHandler?
    ) async throws -> [String] {
        try await restore(point: id, to: directory, format: format, overwrite: overwrite, progress: progress)
    }

    public func storedPoints(item: String?) throws -> [StoredPoint] {
        try points(item: item).map(\.stored)
    }

    public func expirePoint(_ id: String) throws {
        try expire(id)
    }
}

extension RecoveryPointManifest {
    /// The point as the engine sees it.
    public var stored: StoredPoint {
        StoredPoint(id: id, item: item, time: time, disks: disks.map { .init(name: $0.name, size: $0.size) },
                    bytesRead: stats.bytesRead, bytesWritten: stats.bytesWritten,
                    blocksAdded: stats.blocksAdded, blocksChanged: stats.blocksChanged, seconds: stats.seconds,
                    changedOnlyDisks: stats.changedOnlyDisks ?? 0)
    }
}
