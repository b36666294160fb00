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
/// What one protected item's points alone hold in the store (K2 per item): what deleting the
/// item's backup data and collecting would free.
public struct ItemAccounting: Codable, Sendable, Equatable {
    /// Data chunks no point of another item references.
    public var blocksOnlyHere: Int
    /// Stored bytes (data and index, compressed) no point of another item references.
    public var bytesOnlyHere: Int64

    public init(blocksOnlyHere: Int, bytesOnlyHere: Int64) {
        self.blocksOnlyHere = blocksOnlyHere
        self.bytesOnlyHere = bytesOnlyHere
    }
}

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

/// What one backup is to do, decided once by the engine: which point it compares with and
/// when the point was taken.
public struct BackupRequest: Sendable {
    /// The protected item the point belongs to.
    public var item: String
    /// One device per disk, named as the point's disks.
    public var disks: [any BlockDevice]
    /// The point to compare with: blocks equal to its blocks are reused without touching the
    /// store, and a `ChangeTrackingDevice` counting from it is read only where it changed.
    /// Nil: compare with nothing (a full read, still deduplicated against the whole store).
    public var base: String?
    /// When the point was taken (the snapshot's time): its time in the store as in the catalog.
    public var time: Date

    public init(item: String, disks: [any BlockDevice], base: String?, time: Date) {
        self.item = item
        self.disks = disks
        self.base = base
        self.time = time
    }
}

/// Where recovery points' bytes live: the vault's data plane as the engine sees it.
///
/// `VaultPointStore` (CoffreStorage) implements it over a `Vault`. Every point is complete on
/// its own; expiring one never changes what another restores (K1, K3). **Every method may wait
/// on disks or the network: implementations do that work on threads of their own, never on
/// Swift's cooperative pool.**
public protocol PointStore: Sendable {
    /// Backs up the request's disks as a new point. On error or cancellation nothing of it is
    /// visible.
    func backupPoint(_ request: BackupRequest, progress: ProgressHandler?) async throws -> StoredPoint
    /// Restores every disk of a point into `directory` as sparse raw files or qcow2 images
    /// (named by `DiskFormat.fileName(forDisk:)`), each verified; a failed restore leaves no file behind.
    @discardableResult
    func restorePoint(
        _ id: String, to directory: String, format: DiskFormat, overwrite: Bool, progress: ProgressHandler?
    ) async throws -> [String]
    /// Opens a point for random-access, verified reads of its disks; the point stays in the
    /// store until the reader is closed.
    func openPoint(_ id: String) async throws -> any PointDisks
    /// Reads every block of a point and checks it against its hash, writing nothing (a Verify
    /// job's data check); damage throws `ChunkDamaged`/`ChunkMissing` naming the disk and block.
    /// - Returns: disk bytes checked (`scannedBytes`) and bytes read from the store (`readBytes`).
    func verifyPoint(_ id: String, progress: ProgressHandler?) async throws -> TransferProgress
    /// The points the store holds, oldest first (all items when `item` is nil).
    func storedPoints(item: String?) async throws -> [StoredPoint]
    /// Removes a point; its blocks stay until `collectGarbage` finds them unreferenced.
    func expirePoint(_ id: String) async throws
    /// Frees every block no live point references.
    func collectGarbage() async throws -> CollectionReport
    /// Per point id: the blocks it added and only it holds (K2). Kept up to date as points are
    /// committed, expired and collected: answering it walks no index.
    func accounting() async throws -> [String: PointAccounting]
    /// Per item id: what its points alone hold, kept up to date like `accounting()`.
    func itemAccounting() async throws -> [String: ItemAccounting]
    /// Bytes the store holds (data, indexes, manifests), for `/metrics`.
    func storedBytes() async throws -> Int64
    /// Bytes the vault can still take (`ChunkStore.availableBytes`); nil when it cannot tell.
    func availableBytes() async throws -> Int64?

    // MARK: Catalog copies (decision 0030)

    /// Stores `copy` (`CatalogCopy.encoded()`), sealed like a manifest, durable when this returns.
    func saveCatalogCopy(_ copy: [UInt8], name: String) async throws
    /// The catalog copies the store holds, oldest first.
    func catalogCopies() async throws -> [StoredCatalogCopy]
    /// A copy's bytes, verified against their hash (and key).
    /// - Throws: `CatalogCopyNotFound`; `ChunkDamaged` when they do not verify.
    func readCatalogCopy(_ name: String) async throws -> [UInt8]
    /// Removes catalog copies (never anything else); absent ones are not an error.
    func deleteCatalogCopies(_ names: [String]) async throws
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
    /// The point this one was compared with; nil when none was asked for or it could not be
    /// used (then `Disk.fullReadReason` says why).
    public var base: String?

    /// Disks backed up from their changed ranges only (`ChangeTrackingDevice` trusted).
    public var changedOnlyDisks: Int { disks.filter(\.readChangesOnly).count }

    public struct Disk: Codable, Sendable, Equatable {
        public var name: String
        public var size: Int64
        /// Read through its changed ranges only, the rest taken from the base point.
        public var readChangesOnly: Bool
        /// Why a disk that offered its changed ranges was read in full anyway (no usable base
        /// point, another base, a new size); nil when it was read as offered.
        public var fullReadReason: String?

        public init(name: String, size: Int64, readChangesOnly: Bool = false, fullReadReason: String? = nil) {
            self.name = name
            self.size = size
            self.readChangesOnly = readChangesOnly
            self.fullReadReason = fullReadReason
        }
    }

    public init(id: String, item: String, time: Date, disks: [Disk], bytesRead: Int64, bytesWritten: Int64,
                blocksAdded: Int, blocksChanged: Int, seconds: Double, base: String? = nil) {
        self.id = id
        self.item = item
        self.time = time
        self.disks = disks
        self.bytesRead = bytesRead
        self.bytesWritten = bytesWritten
        self.blocksAdded = blocksAdded
        self.blocksChanged = blocksChanged
        self.seconds = seconds
        self.base = base
    }
}
