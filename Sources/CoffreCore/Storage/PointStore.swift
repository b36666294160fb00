public import Foundation

/// Progress of a backup or restore, in bytes.
public struct TransferProgress: Sendable, Equatable {
    /// Disk bytes dealt with so far (holes included), out of `totalBytes`.
    public var scannedBytes: Int64 = 0
    public var totalBytes: Int64 = 0
    /// Bytes read from the source (backup) or from the vault (restore).
    public var readBytes: Int64 = 0
    /// Bytes written to the vault (backup) or to the target (restore).
    public var writtenBytes: Int64 = 0
    public init() {}
}

/// A progress callback; called from worker threads, must be cheap.
public typealias ProgressHandler = @Sendable (TransferProgress) -> Void

/// The accounting of one point against all other live points (K2).
public struct PointAccounting: Codable, Sendable, Equatable {
    /// Data chunks the backup stored that the vault did not already hold.
    public var blocksAdded: Int
    /// Data chunks no other live point references.
    public var blocksOnlyHere: Int
    /// Stored bytes (data and index) that expiring this point and collecting would free.
    public var bytesFreedIfExpired: Int64

    public init(blocksAdded: Int, blocksOnlyHere: Int, bytesFreedIfExpired: Int64) {
        self.blocksAdded = blocksAdded
        self.blocksOnlyHere = blocksOnlyHere
        self.bytesFreedIfExpired = bytesFreedIfExpired
    }
}

/// Where recovery points' bytes live: the vault's data plane as the engine sees it.
///
/// `Vault` (CoffreStorage) implements it over any `ChunkStore`. Every point is complete on its
/// own; expiring one never changes what another restores (K1, K3).
public protocol PointStore: Sendable {
    /// Backs up `disks` as a new point of `item`, incremental against the item's last point.
    /// On error or cancellation nothing of it is visible.
    func backupPoint(item: String, disks: [any BlockDevice], progress: ProgressHandler?) async throws -> StoredPoint
    /// Restores every disk of a point into `directory` as sparse raw files or qcow2 images
    /// (named by `DiskFormat.fileName(forDisk:)`), each verified; a failed restore leaves no file behind.
    @discardableResult
    func restorePoint(
        _ id: String, to directory: String, format: DiskFormat, overwrite: Bool, progress: ProgressHandler?
    ) async throws -> [String]
    /// The points the store holds, oldest first (all items when `item` is nil).
    func storedPoints(item: String?) throws -> [StoredPoint]
    /// Removes a point; its blocks stay until `collectGarbage` finds them unreferenced.
    func expirePoint(_ id: String) throws
    /// Frees every block no live point references.
    func collectGarbage() throws -> CollectionReport
    /// Per point id: the blocks it added and only it holds (K2).
    func accounting() throws -> [String: PointAccounting]
}

/// A point as the point store describes it.
public struct StoredPoint: Codable, Sendable, Equatable {
    public var id: String
    public var item: String
    public var time: Date
    public var disks: [Disk]
    public var bytesRead: Int64
    public var bytesWritten: Int64
    public var blocksAdded: Int
    public var blocksChanged: Int
    public var seconds: Double
    /// Disks backed up from their changed ranges only (`ChangeTrackingDevice` trusted).
    public var changedOnlyDisks: Int

    public struct Disk: Codable, Sendable, Equatable {
        public var name: String
        public var size: Int64
        public init(name: String, size: Int64) {
            self.name = name
            self.size = size
        }
    }

    public init(id: String, item: String, time: Date, disks: [Disk], bytesRead: Int64, bytesWritten: Int64,
                blocksAdded: Int, blocksChanged: Int, seconds: Double, changedOnlyDisks: Int = 0) {
        self.changedOnlyDisks = changedOnlyDisks
        self.id = id
        self.item = item
        self.time = time
        self.disks = disks
        self.bytesRead = bytesRead
        self.bytesWritten = bytesWritten
        self.blocksAdded = blocksAdded
        self.blocksChanged = blocksChanged
        self.seconds = seconds
    }
}
