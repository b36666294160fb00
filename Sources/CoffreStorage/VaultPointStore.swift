public import CoffreCore
import CoffreSystem

/// A `Vault` as the engine sees it: every operation that touches the store's files or locks
/// runs on a thread of its own (`runOnThread`), so a slow or stalled disk holds that thread
/// and never one of the few threads of Swift's cooperative pool that serve every request.
public struct VaultPointStore: PointStore {
    public let vault: Vault

    public init(_ vault: Vault) {
        self.vault = vault
    }

    public func backupPoint(_ request: BackupRequest, progress: ProgressHandler?) async throws -> StoredPoint {
        try await vault.backup(request, progress: progress).stored
    }

    public func restorePoint(
        _ id: String, to directory: String, format: DiskFormat, overwrite: Bool, progress: ProgressHandler?
    ) async throws -> [String] {
        try await vault.restore(point: id, to: directory, format: format, overwrite: overwrite, progress: progress)
    }

    public func openPoint(_ id: String) async throws -> any PointDisks {
        try await runOnThread { _ in try vault.openPoint(id) }
    }

    public func verifyPoint(_ id: String, progress: ProgressHandler?) async throws -> TransferProgress {
        try await vault.verifyPoint(id, progress: progress)
    }

    public func storedPoints(item: String?) async throws -> [StoredPoint] {
        try await runOnThread { _ in try vault.points(item: item).map(\.stored) }
    }

    public func expirePoint(_ id: String) async throws {
        try await runOnThread { _ in try vault.expire(id) }
    }

    public func collectGarbage() async throws -> CollectionReport {
        try await runOnThread { _ in try vault.collectGarbage() }
    }

    public func accounting() async throws -> [String: PointAccounting] {
        try await runOnThread { _ in try vault.accounting() }
    }

    public func itemAccounting() async throws -> [String: ItemAccounting] {
        try await runOnThread { _ in try vault.itemAccounting() }
    }

    public func storedBytes() async throws -> Int64 {
        try await runOnThread { _ in
            try vault.storeBytes()
        }
    }

    public func availableBytes() async throws -> Int64? {
        try await runOnThread { _ in try vault.store.availableBytes() }
    }

    public func saveCatalogCopy(_ copy: [UInt8], name: String) async throws {
        try await runOnThread { _ in try vault.saveCatalogCopy(copy, name: name) }
    }

    public func catalogCopies() async throws -> [StoredCatalogCopy] {
        try await runOnThread { _ in try vault.catalogCopies() }
    }

    public func readCatalogCopy(_ name: String) async throws -> [UInt8] {
        try await runOnThread { _ in try vault.readCatalogCopy(name) }
    }

    public func deleteCatalogCopies(_ names: [String]) async throws {
        try await runOnThread { _ in try vault.deleteCatalogCopies(names) }
    }
}

extension RecoveryPointManifest {
    /// The point as the engine sees it.
    public var stored: StoredPoint {
        StoredPoint(id: id, item: item, time: time,
                    disks: disks.map {
                        .init(name: $0.name, size: $0.size, readChangesOnly: $0.readChangesOnly ?? false,
                              fullReadReason: $0.fullReadReason)
                    },
                    bytesRead: stats.bytesRead, bytesWritten: stats.bytesWritten,
                    blocksAdded: stats.blocksAdded, blocksChanged: stats.blocksChanged, seconds: stats.seconds,
                    base: base)
    }
}
