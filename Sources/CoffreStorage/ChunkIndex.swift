import CoffreCore
import CoffreSystem
import Foundation
import Synchronization

/// One entry of the chunk index: an object and where it is.
struct IndexRecord: Sendable, Equatable {
    var kind: ObjectKind
    var id: ChunkID
    var location: ObjectLocation
}

/// The vault's chunk index: object (kind, id) → (pack, offset, length).
///
/// **In the store** it is a set of segments, `index/<id>`, each a sorted list of records
/// (encoded like any object: compressed, encrypted in an encrypted vault) of at most
/// `segmentLimit` records. Sessions write one per checkpoint, collection rewrites those that
/// name deleted packs and merges small ones. It can always be rebuilt from the packs' own tables
/// (`Vault.repairIndex`).
///
/// **In memory** it holds 12 bytes per record — the id's first 8 bytes and a record number —
/// sorted for binary search; the records themselves (56 bytes each) live in an unlinked
/// temporary file, read with `pread` on a prefix match: the page cache holds them, not the
/// heap. 1 TiB of distinct 64 KiB blocks is 16.8 M records: 200 MiB of memory, 940 MiB of
/// temporary file. A dedup check is a binary search and, on a match, one `pread` — never a
/// request to the store.
///
/// One object may have several records (two sessions stored it, or repacking copied it);
/// lookups prefer a location outside the packs they are told to avoid (condemned ones).
final class ChunkIndex: Sendable {
    /// Records per segment.
    static let segmentLimit = 1 << 16
    static let folder = "index/"
    static let recordSize = 56

    /// The temporary file of the records; closed when the last holder lets go.
    final class RecordFile: Sendable {
        let fd: Int32
        let path: String

        init(directory: String) throws {
            path = "\(directory)/.chunk-index-\(Processes.currentID)-\(randomHex(6))"
            fd = try FileIO.open(path, [.readWrite, .create, .exclusive], mode: 0o600)
            FileIO.unlink(path)
        }

        deinit { FileIO.close(fd) }
    }

    private struct State {
        var file: RecordFile
        /// Segment keys whose records are here, with their ordinal.
        var segments: [String: UInt32] = [:]
        var segmentKeys: [String] = []
        var prefixes: [UInt64] = []
        var slots: [UInt32] = []
        var packs: [PackID] = []
        var packOrdinals: [PackID: UInt32] = [:]
        var count = 0
        /// Full refreshes so far (tests: a segment removed behind our back forces one).
        var rebuilds = 0
    }

    private let directory: String
    private let state: Mutex<State>
    /// One refresh at a time (each reads the store).
    private let refreshing = Mutex(())

    init(directory: String) throws {
        self.directory = directory
        state = Mutex(State(file: try RecordFile(directory: directory)))
    }

    var count: Int { state.withLock { $0.count } }
    var rebuilds: Int { state.withLock { $0.rebuilds } }
    var segmentKeys: Set<String> { state.withLock { Set($0.segments.keys) } }

    // MARK: Lookup

    /// Where an object is, avoiding packs in `avoiding` when another location exists; nil when
    /// the index has no record of it, or only in avoided packs and `fallBack` is false.
    func lookup(_ kind: ObjectKind, _ id: ChunkID, avoiding: Set<PackID> = [], fallBack: Bool = true) throws -> ObjectLocation? {
        let (file, packs, candidates) = state.withLock { s -> (RecordFile, [PackID], [UInt32]) in
            var low = 0, high = s.prefixes.count
            while low < high {
                let mid = (low + high) / 2
                if s.prefixes[mid] < id.prefix { low = mid + 1 } else { high = mid }
            }
            var found: [UInt32] = []
            while low < s.prefixes.count, s.prefixes[low] == id.prefix {
                found.append(s.slots[low])
                low += 1
            }
            return (s.file, found.isEmpty ? [] : s.packs, found)
        }
        guard !candidates.isEmpty else { return nil }
        var avoided: ObjectLocation?
        for slot in candidates {
            let record = try read(slot, from: file, packs: packs)
            guard record.kind == kind, record.id == id else { continue }
            if avoiding.contains(record.location.pack) {
                avoided = avoided ?? record.location
                continue
            }
            return record.location
        }
        return fallBack ? avoided : nil
    }

    /// Every record, in file order, with its segment's key. **Reads the whole record file.**
    func forEachRecord(_ body: (IndexRecord, String) throws -> Void) throws {
        // A snapshot: a rebuild meanwhile replaces the state, never these.
        let (file, count, keys, packs) = state.withLock { ($0.file, $0.count, $0.segmentKeys, $0.packs) }
        let batch = 4096
        var buffer = [UInt8](repeating: 0, count: batch * Self.recordSize)
        var slot = 0
        while slot < count {
            let n = min(batch, count - slot)
            try buffer.withUnsafeMutableBytes { raw in
                try FileIO.pread(file.fd, UnsafeMutableRawBufferPointer(rebasing: raw[0..<(n * Self.recordSize)]),
                                 at: Int64(slot) * Int64(Self.recordSize), path: "chunk index records")
            }
            for i in 0..<n {
                let (record, segment) = try buffer.withUnsafeBytes {
                    try decodeRecord(UnsafeRawBufferPointer(rebasing: $0[(i * Self.recordSize)...]), packs: packs)
                }
                try body(record, keys[Int(segment)])
            }
            slot += n
        }
    }

    // MARK: Loading

    /// Brings the index in line with the segments the store holds: new ones are read and added;
    /// when one it holds is gone (collection rewrote it), everything is read again.
    /// **Blocks.** Throws `ChunkDamaged` naming a damaged segment.
    func refresh(store: any ChunkStore, workspace: CodecWorkspace) throws {
        try refreshing.withLock { _ in
            for attempt in 1... {
                do {
                    try refreshLocked(store: store, workspace: workspace)
                    return
                } catch let error as CoffreError where error.code == .chunkMissing && attempt < 5 {
                    continue  // a segment went between the listing and its read: list again
                }
            }
        }
    }

    private func refreshLocked(store: any ChunkStore, workspace: CodecWorkspace) throws {
        let listed = Set(try store.list(prefix: Self.folder).map(\.key))
        let known = state.withLock { Set($0.segments.keys) }
        // Every new segment's records go to the file first; their prefixes are sorted and merged
        // in once (a merge per segment would copy the whole index once per segment).
        var pending: [Pending] = []
        if !known.isSubset(of: listed) {
            // Rebuilt aside, then swapped in whole: lookups meanwhile (a backup planning, a
            // collection marking) see the index as it was, never an empty or partial one.
            var fresh = State(file: try RecordFile(directory: directory), rebuilds: state.withLock { $0.rebuilds } + 1)
            for key in listed.sorted() {
                guard let bytes = try store.get(key) else { throw CoffreError.chunkMissing(key) }
                try Self.append(segment: key, records: Self.decodeSegment(bytes, key: key, workspace: workspace),
                                to: &pending, into: &fresh)
            }
            pending.sort { $0.prefix < $1.prefix }
            Self.merge(pending, into: &fresh)
            state.withLock { $0 = fresh }
            return
        }
        for key in listed.subtracting(known).sorted() {
            guard let bytes = try store.get(key) else { throw CoffreError.chunkMissing(key) }
            let records = try Self.decodeSegment(bytes, key: key, workspace: workspace)
            try state.withLock { try Self.append(segment: key, records: records, to: &pending, into: &$0) }
        }
        pending.sort { $0.prefix < $1.prefix }
        state.withLock { Self.merge(pending, into: &$0) }
    }

    /// Adds the records of a segment this process wrote. (One at a time with refreshes: a
    /// rebuild between the append and the merge would mix two record files.)
    func add(segment key: String, records: [IndexRecord]) throws {
        try refreshing.withLock { _ in
            var pending: [Pending] = []
            try state.withLock { try Self.append(segment: key, records: records, to: &pending, into: &$0) }
            pending.sort { $0.prefix < $1.prefix }
            state.withLock { Self.merge(pending, into: &$0) }
        }
    }

    /// A record's prefix and number, before it is merged into the sorted arrays.
    private struct Pending {
        var prefix: UInt64
        var slot: UInt32
    }

    /// Writes a segment's records to the record file and notes their prefixes.
    private static func append(segment key: String, records: [IndexRecord], to pending: inout [Pending],
                               into s: inout State) throws {
        do {
            guard s.segments[key] == nil else { return }
            let segment = UInt32(s.segmentKeys.count)
            var bytes = [UInt8](repeating: 0, count: records.count * Self.recordSize)
            pending.reserveCapacity(pending.count + records.count)
            bytes.withUnsafeMutableBytes { raw in
                for (i, record) in records.enumerated() {
                    let pack: UInt32
                    if let known = s.packOrdinals[record.location.pack] {
                        pack = known
                    } else {
                        pack = UInt32(s.packs.count)
                        s.packs.append(record.location.pack)
                        s.packOrdinals[record.location.pack] = pack
                    }
                    let at = i * Self.recordSize
                    raw[at] = record.kind.rawValue
                    record.id.store(into: raw, at: at + 4)
                    raw.storeBytes(of: pack, toByteOffset: at + 36, as: UInt32.self)
                    raw.storeBytes(of: record.location.offset, toByteOffset: at + 40, as: UInt32.self)
                    raw.storeBytes(of: record.location.length, toByteOffset: at + 44, as: UInt32.self)
                    raw.storeBytes(of: segment, toByteOffset: at + 48, as: UInt32.self)
                    pending.append(Pending(prefix: record.id.prefix, slot: UInt32(s.count + i)))
                }
            }
            try bytes.withUnsafeBytes {
                try FileIO.pwrite(s.file.fd, $0, at: Int64(s.count) * Int64(Self.recordSize), path: "chunk index records")
            }
            // Searchable only once merged; the segment counts as read from now on.
            s.segments[key] = segment
            s.segmentKeys.append(key)
            s.count += records.count
        }
    }

    /// Merges noted prefixes, sorted, into the sorted arrays. At the first load of a vault this
    /// is the memory peak: 16 bytes a record noted plus 12 of the result (sorted in place).
    private static func merge(_ added: [Pending], into s: inout State) {
        guard !added.isEmpty else { return }
        do {
            var prefixes: [UInt64] = []
            var slots: [UInt32] = []
            prefixes.reserveCapacity(s.prefixes.count + added.count)
            slots.reserveCapacity(s.prefixes.count + added.count)
            var i = 0, j = 0
            while i < s.prefixes.count || j < added.count {
                if j == added.count || (i < s.prefixes.count && s.prefixes[i] <= added[j].prefix) {
                    prefixes.append(s.prefixes[i])
                    slots.append(s.slots[i])
                    i += 1
                } else {
                    prefixes.append(added[j].prefix)
                    slots.append(added[j].slot)
                    j += 1
                }
            }
            s.prefixes = prefixes
            s.slots = slots
        }
    }

    private func read(_ slot: UInt32, from file: RecordFile, packs: [PackID]) throws -> IndexRecord {
        var buffer = [UInt8](repeating: 0, count: Self.recordSize)
        try buffer.withUnsafeMutableBytes {
            try FileIO.pread(file.fd, $0, at: Int64(slot) * Int64(Self.recordSize), path: "chunk index records")
        }
        return try buffer.withUnsafeBytes { try decodeRecord($0, packs: packs).0 }
    }

    private func decodeRecord(_ raw: UnsafeRawBufferPointer, packs: [PackID]) throws -> (IndexRecord, UInt32) {
        let pack = Int(raw.loadUnaligned(fromByteOffset: 36, as: UInt32.self))
        guard let kind = ObjectKind(rawValue: raw[0]), pack < packs.count else {
            throw CoffreError(.indexDamaged, "The chunk index's temporary file is unreadable")
        }
        let packID = packs[pack]
        let record = IndexRecord(
            kind: kind, id: ChunkID(bytes: UnsafeRawBufferPointer(rebasing: raw[4...])),
            location: ObjectLocation(pack: packID, offset: raw.loadUnaligned(fromByteOffset: 40, as: UInt32.self),
                                     length: raw.loadUnaligned(fromByteOffset: 44, as: UInt32.self)))
        return (record, raw.loadUnaligned(fromByteOffset: 48, as: UInt32.self))
    }

    // MARK: Segments

    static let segmentMagic: [UInt8] = Array("CFI2".utf8)
    static let segmentEntrySize = 57

    /// Encodes records (sorted here) as a segment; returns its key and stored bytes.
    static func encodeSegment(_ records: [IndexRecord], workspace: CodecWorkspace) -> (key: String, bytes: [UInt8]) {
        let sorted = records.sorted { ($0.id, $0.kind.rawValue) < ($1.id, $1.kind.rawValue) }
        var plain = segmentMagic + [UInt8](repeating: 0, count: 4 + sorted.count * segmentEntrySize)
        plain.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(sorted.count).littleEndian, toByteOffset: 4, as: UInt32.self)
            for (i, record) in sorted.enumerated() {
                let at = 8 + i * segmentEntrySize
                raw[at] = record.kind.rawValue
                record.id.store(into: raw, at: at + 1)
                raw.storeBytes(of: record.location.pack.high.bigEndian, toByteOffset: at + 33, as: UInt64.self)
                raw.storeBytes(of: record.location.pack.low.bigEndian, toByteOffset: at + 41, as: UInt64.self)
                raw.storeBytes(of: record.location.offset.littleEndian, toByteOffset: at + 49, as: UInt32.self)
                raw.storeBytes(of: record.location.length.littleEndian, toByteOffset: at + 53, as: UInt32.self)
            }
        }
        let id = workspace.codec.id(of: plain)
        return ("\(folder)\(id.hex)", workspace.encode(plain, id: id, kind: .indexSegment))
    }

    /// Stores a segment. Segments are named by their content, so the same records may make a
    /// segment that exists: it is kept when intact and replaced when damaged. **Blocks.**
    static func storeSegment(_ segment: (key: String, bytes: [UInt8]), in store: any ChunkStore, workspace: CodecWorkspace) throws {
        if try store.put(segment.key, segment.bytes, mode: .create) { return }
        if let existing = try store.get(segment.key), (try? decodeSegment(existing, key: segment.key, workspace: workspace)) != nil {
            return
        }
        try store.put(segment.key, segment.bytes, mode: .replace)
    }

    static func decodeSegment(_ bytes: [UInt8], key: String, workspace: CodecWorkspace) throws -> [IndexRecord] {
        let name = String(key.dropFirst(folder.count))
        guard let id = ChunkID(hex: name) else { throw CoffreError.chunkDamaged("index segment \(name)", detail: "bad name") }
        return try workspace.decode(bytes, id: id, kind: .indexSegment) { raw in
            let damaged = CoffreError.chunkDamaged("index segment \(name)", detail: "unreadable records")
            guard raw.count >= 8, raw.prefix(4).elementsEqual(segmentMagic) else { throw damaged }
            let count = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
            guard raw.count == 8 + count * segmentEntrySize else { throw damaged }
            var records: [IndexRecord] = []
            records.reserveCapacity(count)
            for i in 0..<count {
                let at = 8 + i * segmentEntrySize
                guard let kind = ObjectKind(rawValue: raw[at]) else { throw damaged }
                records.append(IndexRecord(
                    kind: kind, id: ChunkID(bytes: UnsafeRawBufferPointer(rebasing: raw[(at + 1)...])),
                    location: ObjectLocation(
                        pack: PackID(high: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: at + 33, as: UInt64.self)),
                                     low: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: at + 41, as: UInt64.self))),
                        offset: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at + 49, as: UInt32.self)),
                        length: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at + 53, as: UInt32.self)))))
            }
            return records
        }
    }
}
