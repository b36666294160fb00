/// Where a vault keeps its bytes: content-addressed objects (data chunks, index pages) and
/// recovery-point manifests. `LocalChunkStore` keeps them in a folder; an S3 store can follow.
///
/// **Contract for garbage collection**: an object may only be deleted by `collectGarbage`,
/// which must never delete an object that a live manifest, an open write session's protected
/// roots, or a running writer (through `contains(_:_:refresh:)` or `WriteSession.stage`) refers to.
public protocol ChunkStore: Sendable {
    /// The stored frame of an object, or nil when absent.
    func read(_ kind: ObjectKind, _ id: ChunkID) throws -> [UInt8]?
    /// Whether the object is stored. With `refresh`, also marks it as in use by a running writer
    /// so that a concurrent collection keeps it.
    func contains(_ kind: ObjectKind, _ id: ChunkID, refresh: Bool) throws -> Bool
    /// The stored size of an object in bytes, nil when absent.
    func storedSize(_ kind: ObjectKind, _ id: ChunkID) -> Int64?
    /// Every stored object of a kind with its stored size.
    func forEachObject(_ kind: ObjectKind, _ body: (ChunkID, Int64) throws -> Void) throws

    /// Opens a write session (a backup or a restore). The roots are index roots that the session
    /// relies on (the previous point it compares with, the point it restores): collection keeps
    /// everything reachable from them until the session ends.
    func beginSession(purpose: String, protecting roots: [ChunkID]) throws -> any WriteSession

    /// Writes a manifest atomically and durably; only now does the point exist.
    func writeManifest(_ name: String, _ frame: [UInt8]) throws
    func readManifest(_ name: String) throws -> [UInt8]?
    func manifestNames() throws -> [String]
    /// Removes a manifest durably (expiry).
    func removeManifest(_ name: String) throws

    /// Runs a collection: `mark` receives the roots protected by running sessions and returns the
    /// set of referenced objects; everything else that no running writer touched is removed.
    func collectGarbage(mark: ([ChunkID]) throws -> MarkSet) throws -> CollectionReport
    /// Runs `body` while no collection can remove objects.
    func withCollectionPaused<T>(_ body: () throws -> T) throws -> T
}

/// A running backup's or restore's claim on the store.
public protocol WriteSession: AnyObject, Sendable {
    /// Stages an encoded object; returns false when this session already staged it.
    /// Staged objects become visible only at `publish()`.
    func stage(_ kind: ObjectKind, _ id: ChunkID, _ frame: UnsafeRawBufferPointer) throws -> Bool
    /// Whether this session has staged the object.
    func hasStaged(_ kind: ObjectKind, _ id: ChunkID) -> Bool
    /// Makes every staged object durable, then visible.
    func publish() throws
    /// Ends the session; unpublished objects are discarded. Safe to call twice.
    func close()
}

/// Referenced objects found by a collection's mark phase. Keys are 8-byte id prefixes: a
/// collision keeps a garbage object, it can never delete a live one.
public struct MarkSet: Sendable {
    public var chunks = Set<UInt64>()
    public var indexes = Set<UInt64>()
    public init() {}
    public func contains(_ kind: ObjectKind, _ id: ChunkID) -> Bool {
        kind == .chunk ? chunks.contains(id.prefix) : indexes.contains(id.prefix)
    }
}

/// What a collection did.
public struct CollectionReport: Sendable, Codable, Equatable {
    public var removedChunks = 0
    public var removedIndexObjects = 0
    public var removedBytes: Int64 = 0
    public var keptChunks = 0
    public var keptIndexObjects = 0
    public var staleSessionsRemoved = 0
    public init() {}
}
