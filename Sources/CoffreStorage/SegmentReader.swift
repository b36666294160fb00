import CoffreCore
import Synchronization

/// Reads a list of objects — a window of pages' chunks, or a disk's index pages — in few large
/// reads.
///
/// Their locations are looked up first and `ReadPlan` groups them into segments: the objects of
/// one pack that lie close together (the store's `ReadCoalescing`). A segment is read once, when
/// its first object is asked for, and its bytes are dropped after its last. An incremental
/// point's page is then its base's segments plus one for the changed blocks, instead of two
/// reads for every change.
///
/// **Memory** is bounded by `ReadPlan`: the segments held at once come to at most
/// `ReadPlan.heldReads` reads of `limit` bytes, provided the items are asked for in order.
///
/// Items may be asked for from several threads (the restore's workers share a window): one
/// segment is read by one of them while the others wait for it. An object without a location,
/// or whose pack is gone when its segment is read, goes through `Vault.withFrame` (which tries
/// another copy and repairs the index).
final class SegmentReader: Sendable {
    private struct Slot {
        var bytes: [UInt8]?
        /// The pack was gone when read: its objects go through `Vault.withFrame`.
        var gone = false
        /// Objects of the segment not yet handed out; the bytes are dropped at zero.
        var remaining: Int
    }

    private final class Segment: Sendable {
        let pack: PackID
        let range: Range<Int64>
        let slot: Mutex<Slot>

        init(pack: PackID, range: Range<Int64>, uses: Int) {
            self.pack = pack
            self.range = range
            slot = Mutex(Slot(remaining: uses))
        }
    }

    let vault: Vault
    let kind: ObjectKind
    let ids: [ChunkID]
    let avoiding: Set<PackID>
    /// Per item: its segment (-1: none, read through `Vault.withFrame`) and its frame in the pack.
    private let segmentOf: [Int32]
    private let frames: [Range<Int64>]
    private let segments: [Segment]

    /// Plans the reads of `ids` (zero ids are holes: never read). **Blocks** (index lookups).
    /// - Parameter itemSpan: a read serves at most this many consecutive items (see `ReadPlan`).
    init(vault: Vault, kind: ObjectKind, ids: [ChunkID], avoiding: Set<PackID>, itemSpan: Int = .max) throws {
        self.vault = vault
        self.kind = kind
        self.ids = ids
        self.avoiding = avoiding
        let locations = try ids.map { id in id.isZero ? nil : try vault.index.lookup(kind, id, avoiding: avoiding) }
        let plan = ReadPlan(locations, coalescing: vault.store.readCoalescing, itemSpan: itemSpan)
        segmentOf = plan.segmentOf
        frames = locations.map { $0?.range ?? 0..<0 }
        segments = plan.segments.map { Segment(pack: $0.pack, range: $0.range, uses: $0.uses) }
    }

    /// The reads this plan makes (one per segment), for tests.
    var plannedReads: [(pack: PackID, range: Range<Int64>)] { segments.map { ($0.pack, $0.range) } }

    /// The ids listed by item `item`, an index object (a root or a page), verified. **Blocks.**
    func loadIDs(_ item: Int, with workspace: CodecWorkspace) throws -> [ChunkID] {
        try withFrame(item) { frame in try DiskIndex.ids(workspace.decode(frame, id: ids[item], kind: kind)) }
    }

    /// The frame of item `item`, passed to `body`. Each item is asked for once. **Blocks.**
    func withFrame<R>(_ item: Int, _ body: ([UInt8]) throws -> R) throws -> R {
        let index = Int(segmentOf[item])
        guard index >= 0 else { return try vault.withFrame(kind, ids[item], avoiding: avoiding, body) }
        let segment = segments[index]
        let frame = try segment.slot.withLock { slot -> [UInt8]? in
            if slot.bytes == nil && !slot.gone {
                if let read = try vault.store.get(segment.pack.key, range: segment.range) {
                    slot.bytes = read
                } else {
                    slot.gone = true
                }
            }
            slot.remaining -= 1
            defer { if slot.remaining <= 0 { slot.bytes = nil } }
            guard let bytes = slot.bytes else { return nil }
            let start = Int(frames[item].lowerBound - segment.range.lowerBound)
            return Array(bytes[start..<(start + frames[item].count)])
        }
        guard let frame else { return try vault.withFrame(kind, ids[item], avoiding: avoiding, body) }
        return try body(frame)
    }
}

/// Which reads fetch a list of objects' frames, and which read each frame comes from.
///
/// First, per pack, the frames wanted are sorted by offset and cut into segments wherever the gap
/// between two exceeds `gap`, a segment would pass `limit`, or it would serve items more than
/// `itemSpan` apart: each pack's part is read in as few reads as possible, whatever order the
/// items list the frames in. (The span keeps a pack of an incremental's few changed blocks over
/// many pages from being held while all those pages are restored.) A segment is held from its
/// first item to its last; when the segments held at once could exceed `heldReads × limit`
/// bytes (frames scattered over many packs), the plan is made again in item order instead: at
/// most `heldReads` segments take new frames, the least recently extended leaves that set when
/// a new one needs room and is never extended again. A segment held at item `i` was extended at
/// or after `i`, so it was in the set at `i`: at most `heldReads` segments, each at most `limit`
/// bytes (or one frame), are held at any time.
struct ReadPlan {
    struct Segment {
        var pack: PackID
        var range: Range<Int64>
        var uses: Int
        var firstUse: Int
        var lastUse: Int
    }

    static let heldReads = 8

    private(set) var segments: [Segment] = []
    /// Per item, its segment; -1 for items without a location.
    private(set) var segmentOf: [Int32]
    /// Whether planning by pack would have held too much (the plan follows the items' order).
    private(set) var inItemOrder = false

    init(_ locations: [ObjectLocation?], coalescing: ReadCoalescing, itemSpan: Int = .max) {
        segmentOf = [Int32](repeating: -1, count: locations.count)
        planByPack(locations, coalescing, itemSpan: itemSpan)
        if peakBytes > Int64(Self.heldReads) * Int64(coalescing.limit) {
            segments = []
            segmentOf = [Int32](repeating: -1, count: locations.count)
            inItemOrder = true
            planInOrder(locations, coalescing)
        }
    }

    /// Whether `frame` can join a segment of `range` in the same pack.
    private static func joins(_ frame: Range<Int64>, _ range: Range<Int64>, _ coalescing: ReadCoalescing) -> Bool {
        frame.lowerBound <= range.upperBound + Int64(coalescing.gap)
            && frame.upperBound + Int64(coalescing.gap) >= range.lowerBound
            && max(frame.upperBound, range.upperBound) - min(frame.lowerBound, range.lowerBound) <= Int64(coalescing.limit)
    }

    private mutating func add(_ item: Int, _ location: ObjectLocation, to index: Int?) -> Int {
        let frame = location.range
        guard let index else {
            segments.append(Segment(pack: location.pack, range: frame, uses: 1, firstUse: item, lastUse: item))
            segmentOf[item] = Int32(segments.count - 1)
            return segments.count - 1
        }
        let range = segments[index].range
        segments[index].range = min(range.lowerBound, frame.lowerBound)..<max(range.upperBound, frame.upperBound)
        segments[index].uses += 1
        segments[index].firstUse = min(segments[index].firstUse, item)
        segments[index].lastUse = max(segments[index].lastUse, item)
        segmentOf[item] = Int32(index)
        return index
    }

    private mutating func planByPack(_ locations: [ObjectLocation?], _ coalescing: ReadCoalescing, itemSpan: Int) {
        let byPack = Dictionary(grouping: locations.indices.filter { locations[$0] != nil }) { locations[$0]!.pack }
        for pack in byPack.keys.sorted(by: <) {
            var current: Int?
            for item in byPack[pack]!.sorted(by: { locations[$0]!.offset < locations[$1]!.offset }) {
                let location = locations[item]!
                if let index = current {
                    let segment = segments[index]
                    if !Self.joins(location.range, segment.range, coalescing)
                        || max(segment.lastUse, item) - min(segment.firstUse, item) > itemSpan {
                        current = nil
                    }
                }
                current = add(item, location, to: current)
            }
        }
    }

    private mutating func planInOrder(_ locations: [ObjectLocation?], _ coalescing: ReadCoalescing) {
        var open: [Int] = []  // indices into `segments`, least recently extended first
        for (item, location) in locations.enumerated() {
            guard let location else { continue }
            let joining = open.lastIndex { index in
                segments[index].pack == location.pack && Self.joins(location.range, segments[index].range, coalescing)
            }
            if let joining {
                open.append(add(item, location, to: open.remove(at: joining)))
            } else {
                if open.count == Self.heldReads { open.removeFirst() }
                open.append(add(item, location, to: nil))
            }
        }
    }

    /// The most bytes of segments held at once when the items are asked for in order.
    var peakBytes: Int64 {
        guard !segments.isEmpty else { return 0 }
        let items = segmentOf.count
        var delta = [Int64](repeating: 0, count: items + 1)
        for segment in segments {
            delta[segment.firstUse] += Int64(segment.range.count)
            delta[segment.lastUse + 1] -= Int64(segment.range.count)
        }
        var held: Int64 = 0, peak: Int64 = 0
        for change in delta {
            held += change
            peak = max(peak, held)
        }
        return peak
    }
}
