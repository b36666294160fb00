import CoffreCore
import CoffreSystem
import Foundation
import Synchronization

/// What `sessions/<name>` says of a running backup, restore, verify or repack.
struct SessionRecord: Codable, Sendable {
    var purpose: String
    /// `ProcessIdentity` of the process running it: a session of a process that is gone is stale.
    var owner: String
    var started: Date
    var heartbeat: Date
    /// Index roots the session relies on (the point it compares with or restores).
    var roots: [String]

    var rootIDs: [ChunkID] { roots.compactMap { ChunkID(hex: $0) } }
}

/// A backup's, restore's, verify's or repack's claim on the vault, from its start to its end.
///
/// It is an object, `sessions/<name>`, written before the session reads anything: a collection
/// lists the sessions running when it condemns packs and deletes them only once all of those
/// have ended (docs/decisions/0017-collection-without-mtime.md). It reads the condemned packs
/// once, after registering, and never takes an object from them for deduplication.
///
/// Writers store new objects through `PackWriter`s. Every `ChunkIndex.segmentLimit` records,
/// and at `publish()`, the packs written so far are made durable (`persist`) and then described
/// by an index segment: a segment never names a pack that a crash could lose.
final class VaultSession: Sendable {
    struct Key: Hashable {
        var kind: ObjectKind
        var id: ChunkID
    }

    private struct State {
        /// Objects this session stores that no segment names yet.
        var claimed = Set<Key>()
        /// Records of written packs that no segment names yet.
        var pending: [IndexRecord] = []
        var writers: [PackWriter] = []
        var closed = false
        var heartbeat = Monotonic.now()
    }

    let vault: Vault
    let name: String
    let record: SessionRecord
    /// Packs condemned when the session started: never reused.
    let avoiding: Set<PackID>
    private let state = Mutex(State())
    /// One checkpoint at a time.
    private let checkpointing = Mutex(())
    /// Stores finished packs while the workers go on (on S3, two at a time: a PUT waits on the
    /// network as much as on this machine).
    private let uploader: BackgroundQueue
    /// The index objects (pages, roots) of every worker, in packs of their own: a disk's pages
    /// end up side by side, so that a restore or the next backup reads them in a few reads
    /// instead of one per page among the data.
    private let indexWriter = Mutex<PackWriter?>(nil)

    static let folder = "sessions/"
    var key: String { Self.folder + name }

    /// Registers a session, then reads the condemned packs and brings the chunk index up to date.
    /// **Blocks.**
    init(vault: Vault, purpose: String, protecting roots: [ChunkID]) throws {
        self.vault = vault
        let uploads = vault.store.concurrentWrites
        uploader = BackgroundQueue(name: "coffre-packs", limit: uploads > 1 ? 1 : 2, threads: uploads)
        name = "\(purpose)-\(compactTimestamp(Date()))-\(randomHex(6))"
        let now = Date()
        record = SessionRecord(purpose: purpose, owner: ProcessIdentity.current, started: now, heartbeat: now,
                               roots: roots.map(\.hex))
        // The name is unique (a second and 48 random bits): a plain put, so that a restore or a
        // verify never needs the store's conditional create (on S3, a probe of three requests).
        try vault.store.put(Self.folder + name, Array(try JSONEncoder().encode(record)), mode: .replace)
        do {
            avoiding = Set(try vault.condemned()?.packIDs ?? [])
            try vault.refreshIndex(with: CodecWorkspace(codec: vault.codec))
        } catch {
            try? vault.store.delete([Self.folder + name])
            throw error
        }
    }

    deinit { close() }

    // MARK: Deduplication

    /// Whether the vault or this session holds the object (outside condemned packs).
    func contains(_ kind: ObjectKind, _ id: ChunkID) throws -> Bool {
        if state.withLock({ $0.claimed.contains(Key(kind: kind, id: id)) }) { return true }
        return try vault.index.lookup(kind, id, avoiding: avoiding, fallBack: false) != nil
    }

    /// Claims an object for this session to store; false when it already claimed it.
    func claim(_ kind: ObjectKind, _ id: ChunkID) -> Bool {
        state.withLock { $0.claimed.insert(Key(kind: kind, id: id)).inserted }
    }

    // MARK: Writing

    func makeWriter() -> PackWriter {
        let writer = PackWriter(session: self)
        state.withLock { $0.writers.append(writer) }
        return writer
    }

    /// Appends an encoded index object to the session's index pack. **Blocks** (a full pack is
    /// stored).
    func appendIndexObject(_ id: ChunkID, frame: UnsafeRawBufferPointer) throws {
        try indexWriter.withLock { writer in
            let current = writer ?? makeWriter()
            writer = current
            try current.append(.index, id, frame: frame)
        }
    }

    /// Hands a finished pack to the uploader (stored on a thread of its own, durable at the next
    /// checkpoint) and keeps its records for the next segment. Waits while the uploader's queue
    /// is full. **Blocks.**
    func store(pack: PackID, bytes: [UInt8], entries: [PackEntry]) throws {
        try uploader.submit { [vault] in
            guard try vault.store.put(pack.key, bytes, mode: .create, durability: .deferred) else {
                throw CoffreError(.internalError, "Pack \(pack.hex) exists already")
            }
            self.state.withLock { s in
                s.pending += entries.map { IndexRecord(kind: $0.kind, id: $0.id,
                                                       location: ObjectLocation(pack: pack, offset: $0.offset, length: $0.length)) }
            }
        }
        if state.withLock({ $0.pending.count }) >= ChunkIndex.segmentLimit { try checkpoint() }
    }

    /// Makes the packs written so far durable, then names them in an index segment. **Blocks.**
    func checkpoint() throws {
        try checkpointing.withLock { _ in
            try uploader.drain()
            let records = state.withLock { s in
                defer { s.pending = [] }
                return s.pending
            }
            guard !records.isEmpty else { return }
            try vault.store.persist()
            let segments = SegmentWriter(store: vault.store, workspace: CodecWorkspace(codec: vault.codec), index: vault.index)
            for record in records { try segments.add(record) }
            try segments.finish()
            // The index has them now: the claims can go.
            state.withLock { s in for record in records { s.claimed.remove(Key(kind: record.kind, id: record.id)) } }
            try heartbeat()
        }
    }

    /// Finishes every writer's pack, then checkpoints: every object stored is durable and in
    /// the index. Throws when the session was found stale and removed meanwhile. **Blocks.**
    func publish() throws {
        // The writers' last, partial packs are merged: a small backup makes one pack, not one per worker.
        let partial = state.withLock { $0.writers }.compactMap { $0.takeBuilder() }
        if !partial.isEmpty {
            let merged = PackWriter(session: self)
            for builder in partial {
                try builder.bytes.withUnsafeBytes { raw in
                    for entry in builder.entries {
                        try merged.append(entry.kind, entry.id, frame: UnsafeRawBufferPointer(rebasing: raw[entry.range]))
                    }
                }
            }
            try merged.flush()
        }
        try checkpoint()
        guard try vault.store.get(key) != nil else {
            throw CoffreError(.backupInternalError,
                              "The vault's collection took session \(name) for dead (no sign of life for too long)",
                              workaround: "Run the backup again")
        }
    }

    /// Rewrites the session's record with a fresh heartbeat, at most once a minute.
    func heartbeat() throws {
        let due = state.withLock { s in
            guard Monotonic.now() - s.heartbeat >= 60 else { return false }
            s.heartbeat = Monotonic.now()
            return true
        }
        guard due else { return }
        var record = self.record
        record.heartbeat = Date()
        try vault.store.put(key, Array(try JSONEncoder().encode(record)), mode: .replace)
    }

    /// Ends the session; objects stored but not published stay as garbage for collection. Safe
    /// to call twice. **Blocks.**
    func close() {
        let first = state.withLock { s in
            defer { s.closed = true }
            return !s.closed
        }
        guard first else { return }
        uploader.stop()
        try? vault.store.delete([key])
    }
}

/// Runs blocking jobs on `threads` threads of its own, at most `limit` waiting: the submitter
/// goes on while the jobs' I/O is done. The first failure is kept and thrown by the next
/// `submit` or `drain`.
final class BackgroundQueue: @unchecked Sendable {
    // Everything below is guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [() throws -> Void] = []
    private var running = 0
    private var failure: (any Error)?
    private var started = false
    private var stopped = false
    private let name: String
    private let limit: Int
    private let threads: Int

    init(name: String, limit: Int, threads: Int = 1) {
        self.name = name
        self.limit = limit
        self.threads = max(1, threads)
    }

    func submit(_ job: @escaping () throws -> Void) throws {
        condition.lock()
        defer { condition.unlock() }
        while jobs.count >= limit && failure == nil { condition.wait() }
        if let failure { throw failure }
        jobs.append(job)
        if !started {
            started = true
            for index in 0..<threads {
                let thread = Thread { [self] in loop() }
                thread.name = threads == 1 ? name : "\(name)-\(index)"
                thread.start()
            }
        }
        condition.broadcast()
    }

    /// Waits until every submitted job has run; throws the first failure.
    func drain() throws {
        condition.lock()
        defer { condition.unlock() }
        while (!jobs.isEmpty || running > 0) && failure == nil { condition.wait() }
        if let failure { throw failure }
    }

    /// Drops the jobs not started and lets the threads end (a session abandoned: what it would
    /// have stored is not needed).
    func stop() {
        condition.lock()
        stopped = true
        jobs = []
        condition.broadcast()
        condition.unlock()
    }

    private func loop() {
        condition.lock()
        while true {
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty || failure != nil || stopped { break }
            let job = jobs.removeFirst()
            running += 1
            condition.unlock()
            var error: (any Error)?
            do { try job() } catch let thrown { error = thrown }
            condition.lock()
            running -= 1
            if let error, failure == nil { failure = error }
            condition.broadcast()
        }
        jobs = []
        condition.broadcast()
        condition.unlock()
    }
}

/// Gathers a worker's new objects into packs of about `Vault.packSize`.
final class PackWriter: @unchecked Sendable {
    // Used by one worker thread at a time, then flushed by `publish` after the workers ended.
    private let session: VaultSession
    private let workspace: CodecWorkspace
    private var builder: PackBuilder?

    init(session: VaultSession) {
        self.session = session
        workspace = CodecWorkspace(codec: session.vault.codec)
    }

    /// Appends an encoded frame; stores the pack when it is full. **Blocks.**
    func append(_ kind: ObjectKind, _ id: ChunkID, frame: UnsafeRawBufferPointer) throws {
        let builder = self.builder ?? PackBuilder(capacity: session.vault.packSize)
        self.builder = builder
        _ = builder.append(kind, id, frame: frame)
        if builder.size >= session.vault.packSize || builder.entries.count >= session.vault.packEntryLimit {
            try flush()
        }
    }

    /// The pack being built, taken away unfinished (to be merged with others).
    func takeBuilder() -> PackBuilder? {
        defer { builder = nil }
        return builder.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Stores the pack being built, if any. **Blocks.**
    func flush() throws {
        guard let builder, !builder.isEmpty else { return }
        self.builder = nil
        let bytes = builder.finish(with: workspace)
        try session.store(pack: builder.id, bytes: bytes, entries: builder.entries)
    }
}
