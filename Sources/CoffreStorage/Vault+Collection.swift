public import CoffreCore
import CoffreSystem
import Foundation
import Synchronization

/// `gc/condemned`: packs a collection found unneeded, waiting for the sessions that were
/// running when they were condemned to end.
struct CondemnedRecord: Codable, Sendable {
    var created: Date
    var packs: [String]
    /// The sessions listed after this record was written; nil until they are.
    var sessions: [String]?

    var packIDs: [PackID] { packs.compactMap { PackID(hex: $0) } }
}

/// Referenced objects found by a collection's mark phase. Keys are 8-byte id prefixes: a
/// collision keeps a garbage object, it can never delete a live one. About 20 bytes of memory
/// per distinct live object.
struct MarkSet: Sendable {
    var chunks = Set<UInt64>()
    /// Index objects by full id: one per 64 MiB of disk, and the walk skips what it has seen.
    var indexes = Set<ChunkID>()

    func contains(_ kind: ObjectKind, _ id: ChunkID) -> Bool {
        switch kind {
        case .chunk: chunks.contains(id.prefix)
        case .index: indexes.contains(id)
        case .manifest, .packTable, .indexSegment: true
        }
    }
}

/// What `gc/lock` says: who collects.
struct LockHolder: Codable {
    var owner: String
    var started: Date
}

/// A session as a collection sees it.
struct LiveSession: Sendable {
    var name: String
    var record: SessionRecord
}

extension Vault {
    static let condemnedKey = "gc/condemned"
    static let lockKey = "gc/lock"
    /// A session of another host with no heartbeat for this long is taken for dead.
    static let sessionTimeout: TimeInterval = 30 * 60
    /// Repacking starts when more than this share of the stored bytes is unused (restic's default).
    public static let maxUnusedShare = 0.05

    // MARK: Collection

    /// Frees what no live point and no running session needs, in two phases that rely on
    /// neither file times nor renames (docs/decisions/0017-collection-without-mtime.md):
    ///
    /// 1. **Condemn.** Mark every object reachable from the live points and from the roots of
    ///    running sessions. Packs holding no marked object are condemned; partly used packs are
    ///    repacked first (their marked objects copied into new packs, indexed) when more than 5 %
    ///    of the stored bytes would otherwise stay unused, then condemned too. The condemned list
    ///    is written (`gc/condemned`), *then* the running sessions are listed: every session not
    ///    in that list started after the record existed and read it, so it never reuses a
    ///    condemned pack.
    /// 2. **Delete**, in this run or a later one, once every listed session has ended: marks are
    ///    taken again, and a condemned pack that holds the only copy of a marked object is kept
    ///    (recovered); the others are deleted, then the index segments naming them are rewritten,
    ///    then the record goes.
    /// **Blocks.**
    /// - Parameter unusedLimit: repack until at most this share of the stored bytes is unused;
    ///   0 repacks every pack with anything unused in it.
    @discardableResult
    public func collectGarbage(unusedLimit: Double = Vault.maxUnusedShare) throws -> CollectionReport {
        let requestsBefore = store.requests
        let report = try maintenance.withLock { _ in
            try withCollectionLock { try collectLocked(unusedLimit: unusedLimit) }
        }
        recordRequests("collection", since: requestsBefore)
        return report
    }

    private func collectLocked(unusedLimit: Double) throws -> CollectionReport {
        var report = CollectionReport()
        let workspace = CodecWorkspace(codec: codec)
        let sessions = try liveSessions(report: &report)
        try index.refresh(store: store, workspace: workspace)

        if var record = try condemned() {
            if record.sessions == nil {
                record.sessions = sessions.map(\.name)
                try writeCondemned(record, mode: .replace)
            }
            let waiting = Set(record.sessions ?? []).intersection(sessions.map(\.name))
            guard waiting.isEmpty else {
                report.waitingForSessions = waiting.count
                return report
            }
            try finish(record, report: &report, workspace: workspace)
        }

        // Condemn.
        let marks = try mark(sessions: liveSessions(report: &report), workspace: workspace)
        let packs = try packSizes()
        // Per pack: bytes of marked objects and of unmarked ones (tables and trailers are neither).
        var live: [PackID: Int64] = [:]
        var garbage: [PackID: Int64] = [:]
        try index.forEachRecord { record, _ in
            let pack = record.location.pack
            guard packs[pack] != nil else { return }
            if marks.contains(record.kind, record.id) {
                live[pack, default: 0] += Int64(record.location.length)
            } else {
                garbage[pack, default: 0] += Int64(record.location.length)
            }
        }
        var condemn = packs.keys.filter { live[$0] == nil }
        // What stays once the dead packs are gone, and how much of it is unused.
        var stored = live.keys.reduce(Int64(0)) { $0 + packs[$1]! }
        var unused = live.keys.reduce(Int64(0)) { $0 + (garbage[$1] ?? 0) }
        if unused > 0, Double(unused) > unusedLimit * Double(stored) {
            // The most wasteful packs first, until what stays unused is within the limit.
            let partly = live.keys.filter { garbage[$0] != nil }
                .sorted { Double(garbage[$0]!) / Double(packs[$0]!) > Double(garbage[$1]!) / Double(packs[$1]!) }
            var candidates: [PackID] = []
            for pack in partly {
                guard Double(unused) > unusedLimit * Double(stored) else { break }
                candidates.append(pack)
                unused -= garbage[pack]!
                stored -= garbage[pack]!
            }
            condemn += try repack(candidates, marks: marks, report: &report)
        }
        report.keptChunks = marks.chunks.count
        report.keptIndexObjects = marks.indexes.count
        guard !condemn.isEmpty else { return report }

        var record = CondemnedRecord(created: Date(), packs: condemn.sorted().map(\.hex), sessions: nil)
        try writeCondemned(record, mode: .create)
        report.packsCondemned = condemn.count
        // Listed after the record exists: any session not listed reads it when it starts.
        let running = try liveSessions(report: &report)
        record.sessions = running.map(\.name)
        try writeCondemned(record, mode: .replace)
        guard running.isEmpty else {
            report.waitingForSessions = running.count
            return report
        }
        try finish(record, report: &report, workspace: workspace)
        return report
    }

    /// Phase 2: deletes the condemned packs that hold no live object's only copy. **Blocks.**
    private func finish(_ record: CondemnedRecord, report: inout CollectionReport, workspace: CodecWorkspace) throws {
        let condemned = Set(record.packIDs)
        try index.refresh(store: store, workspace: workspace)
        // The segments known before the packs are listed: each names only packs stored before
        // it, so only they can name a pack the listing lacks because it is gone.
        let listedSegments = index.segmentKeys
        let marks = try mark(sessions: liveSessions(report: &report), workspace: workspace)
        let packs = try packSizes()
        // One pass gathers what the condemned packs hold, one finds which of it has a copy in a
        // pack that stays (memory: the condemned packs' objects).
        var held: [VaultSession.Key: [ObjectLocation]] = [:]
        try index.forEachRecord { record, _ in
            guard condemned.contains(record.location.pack), packs[record.location.pack] != nil else { return }
            held[VaultSession.Key(kind: record.kind, id: record.id), default: []].append(record.location)
        }
        var copiedOutside = Set<VaultSession.Key>()
        if !held.isEmpty {
            try index.forEachRecord { record, _ in
                let pack = record.location.pack
                let key = VaultSession.Key(kind: record.kind, id: record.id)
                guard !condemned.contains(pack), packs[pack] != nil, held[key] != nil else { return }
                copiedOutside.insert(key)
            }
        }
        // A marked object with no copy outside keeps one condemned pack that holds it.
        var needed = Set<PackID>()
        for (key, locations) in held where !copiedOutside.contains(key) && marks.contains(key.kind, key.id) {
            needed.insert(locations.last!.pack)
        }
        let doomed = condemned.subtracting(needed).filter { packs[$0] != nil }
        report.packsRecovered += needed.count
        // Objects freed: in a doomed pack and in no pack that stays.
        for (key, locations) in held where !copiedOutside.contains(key) {
            guard !locations.contains(where: { needed.contains($0.pack) }),
                  let last = locations.last(where: { doomed.contains($0.pack) }) else { continue }
            if key.kind == .chunk { report.removedChunks += 1 } else { report.removedIndexObjects += 1 }
            report.removedBytes += Int64(last.length)
        }
        try store.delete(doomed.map(\.key))
        report.packsDeleted += doomed.count
        report.packBytesDeleted += doomed.reduce(0) { $0 + (packs[$1] ?? 0) }
        try rewriteSegments(listedSegments, existing: Set(packs.keys).subtracting(doomed), workspace: workspace)
        try store.delete([Self.condemnedKey])
    }

    /// Copies the marked objects of `packs` into new packs and indexes them; returns the packs
    /// that may now be condemned (a pack with a damaged live object is left as it is). **Blocks.**
    private func repack(_ packs: [PackID], marks: MarkSet, report: inout CollectionReport) throws -> [PackID] {
        guard !packs.isEmpty else { return [] }
        let session = try VaultSession(vault: self, purpose: "repack", protecting: [])
        defer { session.close() }
        let writer = session.makeWriter()
        let workspace = CodecWorkspace(codec: codec)
        var done: [PackID] = []
        for pack in packs {
            guard let bytes = try store.get(pack.key) else { continue }
            let entries: [PackEntry]
            do {
                entries = try PackFormat.table(of: bytes, pack: pack, workspace: workspace)
            } catch {
                continue  // verify names it; its objects stay where they are
            }
            var copies: [(PackEntry, ArraySlice<UInt8>)] = []
            var intact = true
            for entry in entries where marks.contains(entry.kind, entry.id) {
                let frame = bytes[entry.range]
                guard workspace.verifies(Array(frame), entry) else {
                    intact = false
                    break
                }
                copies.append((entry, frame))
            }
            guard intact else { continue }
            for (entry, frame) in copies {
                try frame.withUnsafeBytes { try writer.append(entry.kind, entry.id, frame: $0) }
                report.bytesRewritten += Int64(frame.count)
            }
            done.append(pack)
        }
        try session.publish()
        report.packsRepacked += done.count
        return done
    }

    /// Rewrites the index segments that name packs no longer in `existing`, and merges small
    /// segments, streaming. **Blocks.**
    ///
    /// Only `segments` are rewritten: those the index held before `existing` was listed. A
    /// segment a session of this process published since names packs stored after the
    /// listing — not in `existing`, yet not gone: rewriting it would drop a new point's records.
    private func rewriteSegments(_ segments: Set<String>, existing: Set<PackID>, workspace: CodecWorkspace) throws {
        var counts: [String: Int] = [:]
        var dangling = Set<String>()
        try index.forEachRecord { record, segment in
            guard segments.contains(segment) else { return }
            counts[segment, default: 0] += 1
            if !existing.contains(record.location.pack) { dangling.insert(segment) }
        }
        let small = counts.filter { $0.value < ChunkIndex.segmentLimit / 4 }.map(\.key)
        var rewrite = dangling
        if small.count > 1 { rewrite.formUnion(small) }
        guard !rewrite.isEmpty else { return }
        let writer = SegmentWriter(store: store, workspace: workspace)
        try index.forEachRecord { record, segment in
            guard rewrite.contains(segment), existing.contains(record.location.pack) else { return }
            try writer.add(record)
        }
        try writer.finish()
        // Segments are named by their content: the same records may make a segment that exists.
        try store.delete(Array(rewrite.subtracting(writer.written)))
        try index.refresh(store: store, workspace: workspace)
    }

    // MARK: Marking

    /// Every object reachable from the live points and the sessions' roots. **Blocks.**
    func mark(sessions: [LiveSession], workspace: CodecWorkspace) throws -> MarkSet {
        var marks = MarkSet()
        let roots = try points().flatMap { $0.disks.map(\.rootID) } + sessions.flatMap(\.record.rootIDs)
        for root in roots where marks.indexes.insert(root).inserted {
            for page in try loadIDs(root, with: workspace) where marks.indexes.insert(page).inserted {
                for id in try loadIDs(page, with: workspace) where !id.isZero {
                    marks.chunks.insert(id.prefix)
                }
            }
        }
        return marks
    }

    /// Every pack and its size (one listing). **Blocks.**
    func packSizes() throws -> [PackID: Int64] {
        var packs: [PackID: Int64] = [:]
        for object in try store.list(prefix: PackID.folder) {
            if let id = PackID(key: object.key) { packs[id] = object.size }
        }
        return packs
    }

    // MARK: Sessions and records

    /// The running sessions; the records of dead ones are removed (and counted) unless
    /// `removingStale` is false (a read-only caller). **Blocks.**
    func liveSessions(report: inout CollectionReport, removingStale: Bool = true) throws -> [LiveSession] {
        var live: [LiveSession] = []
        let host = ProcessIdentity.current.split(separator: ":").first
        for object in try store.list(prefix: VaultSession.folder) {
            let name = String(object.key.dropFirst(VaultSession.folder.count))
            guard let bytes = try store.get(object.key) else { continue }  // ended meanwhile
            guard let record = try? JSONDecoder().decode(SessionRecord.self, from: Data(bytes)) else {
                throw CoffreError(.indexDamaged, "The record of session \(name) is unreadable",
                                  workaround: "If no backup, restore or verify runs, delete \(object.key) from the vault and collect again")
            }
            let local = record.owner.split(separator: ":").first == host
            let stale = !ProcessIdentity.isAlive(record.owner)
                || (!local && Date().timeIntervalSince(record.heartbeat) > Self.sessionTimeout)
            if stale {
                guard removingStale else { continue }
                try store.delete([object.key])
                report.staleSessionsRemoved += 1
            } else {
                live.append(LiveSession(name: name, record: record))
            }
        }
        return live
    }

    func condemned() throws -> CondemnedRecord? {
        guard let bytes = try store.get(Self.condemnedKey) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard let record = try? decoder.decode(CondemnedRecord.self, from: Data(bytes)) else {
            throw CoffreError(.indexDamaged, "The vault's list of condemned packs (\(Self.condemnedKey)) is unreadable",
                              workaround: "Restore it from a copy of the vault; never delete it by hand")
        }
        return record
    }

    private func writeCondemned(_ record: CondemnedRecord, mode: PutMode) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        guard try store.put(Self.condemnedKey, Array(try encoder.encode(record)), mode: mode) else {
            throw CoffreError.vaultBusy("another collection condemned packs at the same time")
        }
    }

    /// Runs `body` holding `gc/lock`: one collection, repair or upgrade at a time across
    /// processes. A lock left by a process that is gone is taken over. **Blocks.**
    func withCollectionLock<T>(_ body: () throws -> T) throws -> T {
        let mine = Array(try JSONEncoder().encode(LockHolder(owner: ProcessIdentity.current, started: Date())))
        var taken = try store.put(Self.lockKey, mine, mode: .create)
        if !taken, let bytes = try store.get(Self.lockKey) {
            let holder = try? JSONDecoder().decode(LockHolder.self, from: Data(bytes))
            if let holder, ProcessIdentity.isAlive(holder.owner) {
                throw CoffreError.vaultBusy("a collection runs in process \(holder.owner)")
            }
            try store.delete([Self.lockKey])
            taken = try store.put(Self.lockKey, mine, mode: .create)
        } else if !taken {
            taken = try store.put(Self.lockKey, mine, mode: .create)
        }
        guard taken else { throw CoffreError.vaultBusy("another collection started at the same time") }
        defer { try? store.delete([Self.lockKey]) }
        return try body()
    }

    // MARK: Repair

    /// Rebuilds the chunk index from the packs' own tables and replaces every segment with the
    /// result. Packs whose table cannot be read are named in the report (collection removes
    /// them as it removes any pack no segment names). **Blocks.**
    @discardableResult
    public func repairIndex() throws -> RepairReport {
        try maintenance.withLock { _ in try withCollectionLock { try repairLocked() } }
    }

    /// Rebuilds the index unless a collection or repair runs (then the caller goes on without).
    func repairIfIdle() {
        _ = try? maintenance.withLockIfAvailable { _ in try withCollectionLock { try repairLocked() } }
    }

    private func repairLocked() throws -> RepairReport {
        let workspace = CodecWorkspace(codec: codec)
        var report = RepairReport()
        let oldSegments = try store.list(prefix: ChunkIndex.folder).map(\.key)
        let packs = try store.list(prefix: PackID.folder)
        // A pack listed is complete; make it durable before any segment names it.
        try store.persist()
        let writer = SegmentWriter(store: store, workspace: workspace)
        for object in packs {
            guard let pack = PackID(key: object.key) else { continue }
            do {
                let entries = try PackFormat.readTable(store, pack: pack, size: object.size, workspace: workspace)
                report.packs += 1
                report.records += entries.count
                for entry in entries {
                    try writer.add(IndexRecord(kind: entry.kind, id: entry.id,
                                               location: ObjectLocation(pack: pack, offset: entry.offset, length: entry.length)))
                }
            } catch let error as CoffreError where error.code == .chunkDamaged || error.code == .chunkMissing {
                report.unreadablePacks.append(pack.hex)
            }
        }
        try writer.finish()
        try store.delete(oldSegments.filter { !writer.written.contains($0) })
        try index.refresh(store: store, workspace: workspace)
        report.segments = writer.written.count
        return report
    }
}

/// Writes records as segments of `ChunkIndex.segmentLimit`, as they come.
final class SegmentWriter {
    let store: any ChunkStore
    let workspace: CodecWorkspace
    /// Where each segment written is also added (a session's own index); nil when the caller
    /// refreshes the index afterwards.
    let index: ChunkIndex?
    private var batch: [IndexRecord] = []
    /// The keys of the segments written.
    private(set) var written = Set<String>()

    init(store: any ChunkStore, workspace: CodecWorkspace, index: ChunkIndex? = nil) {
        self.store = store
        self.workspace = workspace
        self.index = index
    }

    func add(_ record: IndexRecord) throws {
        batch.append(record)
        if batch.count >= ChunkIndex.segmentLimit { try finish() }
    }

    /// Writes what is pending. **Blocks.**
    func finish() throws {
        guard !batch.isEmpty else { return }
        let segment = ChunkIndex.encodeSegment(batch, workspace: workspace)
        try ChunkIndex.storeSegment(segment, in: store, workspace: workspace)
        try index?.add(segment: segment.key, records: batch)
        written.insert(segment.key)
        batch = []
    }
}

/// What `repairIndex` did.
public struct RepairReport: Codable, Sendable, Equatable {
    public var packs = 0
    public var records = 0
    public var segments = 0
    /// Packs whose table could not be read: nothing in them is indexed.
    public var unreadablePacks: [String] = []
}
