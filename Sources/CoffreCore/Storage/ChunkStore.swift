public import Foundation

/// Where a vault keeps its bytes: a plain object store. Packs of chunks, chunk-index segments,
/// recovery-point manifests, running sessions and the collection's records are all objects
/// under `/`-separated keys. Everything above it (packing, the chunk index, collection) is the
/// vault's, the same for every backend: `LocalChunkStore` keeps objects as files,
/// `MemoryChunkStore` in memory (tests), an S3 store in a bucket.
///
/// **Every method blocks** (disk or network): call it from threads of one's own, never from
/// Swift's cooperative pool.
///
/// Contract (checked by `ChunkStoreConformance` in CoffreTesting):
/// - An object is visible whole or not at all; `get` never returns a torn object.
/// - `put(_:_:mode: .create)` is the one concurrency primitive: of several creators of one
///   key, exactly one gets `true` and its bytes stay.
/// - After `put` returns, `get` and `list` see the object (read-after-write, listings included).
/// - With `.deferred` durability an object may be lost by a crash until `persist()` returns; with
///   `.immediate` it survives once `put` returns.
public protocol ChunkStore: Sendable {
    /// Stores an object. Returns false, leaving the stored object as it is, when `mode` is
    /// `.create` and the key exists.
    @discardableResult
    func put(_ key: String, _ bytes: [UInt8], mode: PutMode, durability: Durability) throws -> Bool
    /// An object's bytes, or `range` of them; nil when the object is absent. A range past the
    /// object's end is an error.
    func get(_ key: String, range: Range<Int64>?) throws -> [UInt8]?
    /// Every object whose key starts with `prefix`, sorted by key.
    func list(prefix: String) throws -> [StoredObject]
    /// Removes objects; keys that are absent are not an error.
    func delete(_ keys: [String]) throws
    /// Makes every object put so far durable (a barrier for `.deferred` puts).
    func persist() throws
    /// Where this store is, for messages and `coffre vault stats`.
    var location: String { get }
    /// The requests this process's store has sent, for stores that count them (S3); nil else.
    var requests: StoreRequests? { get }
    /// How reads of nearby ranges of one object should be merged (restores read this way).
    var readCoalescing: ReadCoalescing { get }
    /// The pack size for a vault created in this store; nil for the vault's default.
    var preferredPackSize: Int? { get }
    /// How many large objects (packs) a writer should put at once.
    var concurrentWrites: Int { get }
    /// Bytes the store can still take, for monitoring: the free space of a local store's file
    /// system (for an unprivileged writer); nil when the store has no such limit it can tell
    /// (an object store).
    func availableBytes() throws -> Int64?
}

extension ChunkStore {
    public var requests: StoreRequests? { nil }
    public var readCoalescing: ReadCoalescing { .local }
    public var preferredPackSize: Int? { nil }
    public var concurrentWrites: Int { 1 }
    public func availableBytes() throws -> Int64? { nil }

    @discardableResult
    public func put(_ key: String, _ bytes: [UInt8], mode: PutMode) throws -> Bool {
        try put(key, bytes, mode: mode, durability: .immediate)
    }

    public func get(_ key: String) throws -> [UInt8]? {
        try get(key, range: nil)
    }
}

public enum PutMode: Sendable {
    /// Only when the key is absent (S3 `If-None-Match: *`).
    case create
    /// Whatever is there.
    case replace
}

public enum Durability: Sendable {
    /// Durable when `put` returns.
    case immediate
    /// Durable after the next `persist()`: many large objects, one barrier.
    case deferred
}

/// How a reader merges ranges of one object that lie close together into one `get`: a range
/// joins the read before it when the bytes between them are at most `gap` (read and dropped)
/// and the whole read stays within `limit` bytes.
public struct ReadCoalescing: Sendable, Equatable {
    public var limit: Int
    public var gap: Int

    public init(limit: Int, gap: Int) {
        self.limit = limit
        self.gap = gap
    }

    /// Files and memory: a read costs a system call, so reads stay small (4 MiB, bounded memory)
    /// and only nearly contiguous ranges merge.
    public static let local = ReadCoalescing(limit: 4 << 20, gap: 64 << 10)
}

/// An object as a listing shows it.
public struct StoredObject: Sendable, Equatable {
    public var key: String
    public var size: Int64
    public init(key: String, size: Int64) {
        self.key = key
        self.size = size
    }
}

/// What a collection did.
public struct CollectionReport: Sendable, Codable, Equatable {
    /// Data chunks and index objects freed (they are gone once their packs are deleted).
    public var removedChunks = 0
    public var removedIndexObjects = 0
    /// Stored bytes of the objects freed (what accounting's "bytes freed if expired" promised).
    public var removedBytes: Int64 = 0
    /// Bytes of the packs deleted (objects, tables, and copies repacking made elsewhere).
    public var packBytesDeleted: Int64 = 0
    public var keptChunks = 0
    public var keptIndexObjects = 0
    public var staleSessionsRemoved = 0
    /// Packs deleted, and packs condemned this run (deleted by a later run once every session
    /// running now has ended).
    public var packsDeleted = 0
    public var packsCondemned = 0
    /// Partly used packs whose live objects were copied into new packs, and the bytes copied.
    public var packsRepacked = 0
    public var bytesRewritten: Int64 = 0
    /// Condemned packs found still needed at deletion time and kept.
    public var packsRecovered = 0
    /// Sessions that were running when the packs were condemned and had not ended: deletion waits for them.
    public var waitingForSessions = 0
    public init() {}
}

/// Requests a store sent, by kind (S3's GET, PUT, HEAD, LIST, DELETE), with the tries that
/// failed and were made again and the bytes both ways.
public struct StoreRequests: Sendable, Codable, Equatable {
    public var get = 0
    public var put = 0
    public var head = 0
    public var list = 0
    public var delete = 0
    /// Tries that failed and were made again (each also counted by kind).
    public var retries = 0
    public var bytesSent: Int64 = 0
    public var bytesReceived: Int64 = 0

    public init() {}

    public var total: Int { self.get + self.put + self.head + self.list + self.delete }

    /// What was sent since `earlier`.
    public func since(_ earlier: StoreRequests) -> StoreRequests {
        var d = StoreRequests()
        d.get = self.get - earlier.get
        d.put = put - earlier.put
        d.head = head - earlier.head
        d.list = list - earlier.list
        d.delete = delete - earlier.delete
        d.retries = retries - earlier.retries
        d.bytesSent = bytesSent - earlier.bytesSent
        d.bytesReceived = bytesReceived - earlier.bytesReceived
        return d
    }
}

/// The requests one operation (a backup, a collection) made, as `coffre vault stats` shows them.
public struct OperationRequests: Sendable, Codable, Equatable {
    public var operation: String
    public var finished: Date
    /// The point a backup made; the bytes it read from its disks.
    public var point: String?
    public var bytesRead: Int64?
    public var requests: StoreRequests

    public init(operation: String, finished: Date, point: String? = nil, bytesRead: Int64? = nil, requests: StoreRequests) {
        self.operation = operation
        self.finished = finished
        self.point = point
        self.bytesRead = bytesRead
        self.requests = requests
    }
}
