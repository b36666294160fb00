import CoffreCore
@testable import CoffreStorage
import CoffreTesting
import Foundation
import Synchronization
import Testing

/// How many reads a restore makes: the segments `SegmentReader` plans (nearby frames of one pack
/// in one read), counted at the store.
@Suite struct RestoreReadsTests {
    static let block = 16 << 10
    /// 512 blocks: one page of the disk index.
    static let blocks = 512
    /// Merges like the S3 store: large reads, gaps of up to 1 MiB read and dropped.
    static let wide = ReadCoalescing(limit: 32 << 20, gap: 1 << 20)

    /// A memory store that counts the reads of packs and merges reads as told.
    final class CountingStore: ChunkStore {
        let inner = MemoryChunkStore()
        let readCoalescing: ReadCoalescing
        let packReads = Atomic(0)

        init(_ coalescing: ReadCoalescing) { readCoalescing = coalescing }

        var location: String { inner.location }
        func put(_ key: String, _ bytes: [UInt8], mode: PutMode, durability: Durability) throws -> Bool {
            try inner.put(key, bytes, mode: mode, durability: durability)
        }
        func get(_ key: String, range: Range<Int64>?) throws -> [UInt8]? {
            if key.hasPrefix(PackID.folder) { packReads.add(1, ordering: .relaxed) }
            return try inner.get(key, range: range)
        }
        func list(prefix: String) throws -> [StoredObject] { try inner.list(prefix: prefix) }
        func delete(_ keys: [String]) throws { try inner.delete(keys) }
        func persist() throws {}
    }

    /// A vault on a counting store, its folder removed at the end.
    final class Fixture {
        let folder = NSTemporaryDirectory() + "coffre-reads-\(UUID().uuidString)"
        let store: CountingStore
        let vault: Vault

        init(_ coalescing: ReadCoalescing) throws {
            store = CountingStore(coalescing)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            vault = try Vault.create(in: store, cacheDirectory: folder, blockSize: RestoreReadsTests.block)
        }

        deinit { try? FileManager.default.removeItem(atPath: folder) }

        func backup(_ bytes: [UInt8]) async throws -> RecoveryPointManifest {
            try await vault.backup(item: "vm", disks: [MemoryBlockDevice(name: "d", bytes: bytes)])
        }

        /// Restores a point; returns its bytes and the packs' reads the restore made.
        func restore(_ point: RecoveryPointManifest) async throws -> (bytes: [UInt8], reads: Int) {
            let before = store.packReads.load(ordering: .relaxed)
            let target = folder + "/restore-\(UUID().uuidString)"
            let paths = try await vault.restore(point: point.id, to: target)
            let reads = store.packReads.load(ordering: .relaxed) - before
            return (Array(try Data(contentsOf: URL(fileURLWithPath: paths[0]))), reads)
        }
    }

    /// Overwrites each block `b` where `b % period == phase` with new random bytes.
    static func change(_ bytes: inout [UInt8], period: Int, phase: Int, generator: inout SeededGenerator) {
        for b in stride(from: phase, to: blocks, by: period) {
            bytes.replaceSubrange(b * block..<(b + 1) * block, with: generator.bytes(block))
        }
    }

    /// An incremental point's page is its base's reads plus one for the changed blocks — not two
    /// reads for every change, as when a read stopped at the first block of another pack.
    @Test(arguments: [ReadCoalescing.local, Self.wide])
    func anIncrementalPointReadsEachPackOnce(coalescing: ReadCoalescing) async throws {
        let fixture = try Fixture(coalescing)
        var generator = SeededGenerator(seed: 41)
        var bytes = generator.bytes(Self.blocks * Self.block)
        _ = try await fixture.backup(bytes)
        for _ in 0..<20 {  // 20 scattered blocks
            let b = Int.random(in: 0..<Self.blocks, using: &generator)
            bytes.replaceSubrange(b * Self.block..<(b + 1) * Self.block, with: generator.bytes(Self.block))
        }
        let second = try await fixture.backup(bytes)
        let (restored, reads) = try await fixture.restore(second)
        #expect(restored == bytes)
        // The root and the page, the base's 8 MiB in reads of at most `limit`, the changes.
        let baseReads = (Self.blocks * (Self.block + 64) + coalescing.limit - 1) / coalescing.limit
        #expect(reads <= 2 + baseReads + 1, "\(reads) reads")
    }

    /// A page whose blocks alternate between seven packs (a base and six incrementals) keeps
    /// one segment of each open: seven data reads.
    @Test func blocksAlternatingBetweenPacksAreReadOncePerPack() async throws {
        let fixture = try Fixture(Self.wide)
        var generator = SeededGenerator(seed: 42)
        var bytes = generator.bytes(Self.blocks * Self.block)
        var point = try await fixture.backup(bytes)
        for phase in 1..<7 {
            Self.change(&bytes, period: 7, phase: phase, generator: &generator)
            point = try await fixture.backup(bytes)
        }
        let (restored, reads) = try await fixture.restore(point)
        #expect(restored == bytes)
        #expect(reads <= 2 + 7, "\(reads) reads")
    }

    /// Frames of two packs, listed alternately and each pack's backwards: one read per pack.
    @Test func aPlanReadsEachPacksPartOnceWhateverTheOrder() {
        let a = PackID(high: 1, low: 1), b = PackID(high: 2, low: 2)
        let frame: UInt32 = 20_000
        let locations: [ObjectLocation?] = (0..<100).map { (item: Int) -> ObjectLocation? in
            guard item % 10 != 9 else { return nil }
            let offset = UInt32(99 - item) * frame
            return ObjectLocation(pack: item % 2 == 0 ? a : b, offset: offset, length: frame)
        }
        let plan = ReadPlan(locations, coalescing: Self.wide)
        #expect(plan.segments.count == 2)
        Self.checkCovers(plan, locations, coalescing: Self.wide)
    }

    /// Random frames over many packs, in random order: every frame is in its read, no read
    /// passes the limit or (planned by pack) the item span, and the bytes held at once stay
    /// within `heldReads × limit` — whether
    /// the plan goes by pack or, where that would hold too much, by the items' order (both
    /// happen among the seeds).
    @Test func aPlanCoversEveryFrameWithinItsMemoryBound() {
        var inItemOrder = 0
        let seeds: [UInt64] = Array(1...16)
        for seed in seeds {
            var generator = SeededGenerator(seed: seed)
            let packs = (0..<Int.random(in: 1...40, using: &generator)).map { PackID(high: UInt64($0), low: 7) }
            let span = UInt32(Int.random(in: 1...16, using: &generator) << 20)
            let coalescing = ReadCoalescing(limit: Int.random(in: 64...1024, using: &generator) << 10,
                                            gap: Int.random(in: 0...256, using: &generator) << 10)
            let locations: [ObjectLocation?] = (0..<Int.random(in: 10...2000, using: &generator)).map { _ in
                guard Int.random(in: 0..<10, using: &generator) > 0 else { return nil }
                return ObjectLocation(pack: packs.randomElement(using: &generator)!,
                                      offset: UInt32.random(in: 0..<span, using: &generator),
                                      length: UInt32.random(in: 1...(64 << 10), using: &generator))
            }
            let itemSpan = Bool.random(using: &generator) ? Int.max : Int.random(in: 1...1000, using: &generator)
            let plan = ReadPlan(locations, coalescing: coalescing, itemSpan: itemSpan)
            Self.checkCovers(plan, locations, coalescing: coalescing)
            #expect(plan.peakBytes <= Int64(ReadPlan.heldReads) * Int64(coalescing.limit), "seed \(seed)")
            if !plan.inItemOrder {
                #expect(plan.segments.allSatisfy { $0.lastUse - $0.firstUse <= itemSpan }, "seed \(seed)")
            }
            if plan.inItemOrder { inItemOrder += 1 }
        }
        #expect(inItemOrder > 0 && inItemOrder < seeds.count, "\(inItemOrder) of \(seeds.count) plans in item order")
    }

    /// Every frame in its segment, of its pack; a segment passes the limit only as one frame;
    /// the uses add up.
    static func checkCovers(_ plan: ReadPlan, _ locations: [ObjectLocation?], coalescing: ReadCoalescing) {
        var uses = [Int](repeating: 0, count: plan.segments.count)
        for (item, location) in locations.enumerated() {
            let index = Int(plan.segmentOf[item])
            guard let location else {
                #expect(index == -1)
                continue
            }
            let segment = plan.segments[index]
            #expect(segment.pack == location.pack && segment.range.contains(location.range.lowerBound)
                    && segment.range.upperBound >= location.range.upperBound)
            #expect(segment.firstUse <= item && item <= segment.lastUse)
            uses[index] += 1
        }
        for (index, segment) in plan.segments.enumerated() {
            #expect(segment.uses == uses[index])
            #expect(segment.range.count <= coalescing.limit || segment.uses == 1 || segment.range.count <= 64 << 10)
        }
    }

    /// The plan itself: frames of one pack within `gap` of each other merge, up to `limit`.
    @Test func thePlanMergesNearbyFramesUpToTheLimit() async throws {
        let fixture = try Fixture(ReadCoalescing(limit: 1 << 20, gap: 0))
        var generator = SeededGenerator(seed: 44)
        let point = try await fixture.backup(generator.bytes(Self.blocks * Self.block))
        let workspace = CodecWorkspace(codec: fixture.vault.codec)
        let pages = try fixture.vault.loadIDs(point.disks[0].rootID, with: workspace)
        let ids = try fixture.vault.loadIDs(pages[0], with: workspace)
        let reader = try SegmentReader(vault: fixture.vault, kind: .chunk, ids: ids, avoiding: [])
        let reads = reader.plannedReads
        // 8 MiB of incompressible frames in contiguous reads of at most 1 MiB.
        #expect(reads.count >= 8 && reads.count <= 10, "\(reads.count) reads")
        #expect(reads.allSatisfy { $0.range.count <= 1 << 20 })
        for (a, b) in zip(reads, reads.dropFirst()) where a.pack == b.pack {
            #expect(a.range.upperBound == b.range.lowerBound)
        }
    }
}
