import CoffreCore
@testable import CoffreStorage
import CoffreTesting
import Foundation
import Testing

/// Random-access reads of a point (what mounts and the NBD export serve), on the test store.
@Suite struct PointReaderTests {
    static let block = 16 << 10

    /// A disk of random blocks with holes and a partial last block.
    static func disk(blocks: Int, tail: Int, seed: UInt64) -> [UInt8] {
        var generator = SeededGenerator(seed: seed)
        var bytes = generator.bytes(blocks * block + tail)
        for hole in stride(from: 3, to: blocks, by: 7) {
            bytes.replaceSubrange(hole * block..<(hole + 1) * block, with: [UInt8](repeating: 0, count: block))
        }
        bytes.replaceSubrange(block * 10 + 100..<block * 10 + 200, with: [UInt8](repeating: 0, count: 100))
        return bytes
    }

    @Test func readsAtAnyOffsetEqualTheDisks() async throws {
        let t = try TestVault(blockSize: Self.block)
        let a = Self.disk(blocks: 200, tail: 5000, seed: 1), b = Self.disk(blocks: 40, tail: 0, seed: 2)
        let point = try await t.backup("vm", ["a": a, "b": b])
        let reader = try t.vault.openPoint(point.id)
        defer { reader.close() }
        #expect(reader.disks.map(\.name) == ["a", "b"])
        var generator = SeededGenerator(seed: 3)
        for _ in 0..<300 {
            let (index, bytes) = Bool.random(using: &generator) ? (0, a) : (1, b)
            let offset = Int.random(in: 0..<bytes.count, using: &generator)
            let count = Int.random(in: 1...(3 * Self.block), using: &generator)
            let end = min(bytes.count, offset + count)
            #expect(try reader.read(disk: index, at: Int64(offset), count: count) == Array(bytes[offset..<end]),
                    "disk \(index), \(count) bytes at \(offset)")
        }
        // Sequential reads (read ahead), past the end, and nothing at the end.
        var whole: [UInt8] = []
        var offset = 0
        while offset < a.count + 100_000 {
            whole += try reader.read(disk: 0, at: Int64(offset), count: 100_000)
            offset += 100_000
        }
        #expect(whole == a)
        #expect(try reader.read(disk: 0, at: Int64(a.count), count: 10).isEmpty)
        #expect(throws: CoffreError.self) { _ = try reader.read(disk: 2, at: 0, count: 1) }
    }

    @Test func aDamagedBlockFailsItsReadAndNamesThePoint() async throws {
        let t = try TestVault(blockSize: Self.block)
        let bytes = Self.disk(blocks: 64, tail: 0, seed: 4)
        let point = try await t.backup("vm", ["d": bytes])
        let victim = 20
        let id = t.vault.codec.id(of: Array(bytes[victim * Self.block..<(victim + 1) * Self.block]))
        let location = try #require(try t.vault.index.lookup(.chunk, id))
        try t.damage(location.pack.key) { _ in Int(location.offset) + Int(location.length) / 2 }
        let reader = try t.vault.openPoint(point.id)
        defer { reader.close() }
        let start = Int64(victim * Self.block)
        let error = #expect(throws: CoffreError.self) { _ = try reader.read(disk: 0, at: start + 10, count: 100) }
        #expect(error?.code == .chunkDamaged)
        #expect(error?.message.contains(point.id) == true, "\(String(describing: error))")
        // Sequentially, from the block before: the damaged one, read ahead, fails on its own read.
        #expect(try reader.read(disk: 0, at: start - Int64(Self.block), count: Self.block)
                == Array(bytes[(victim - 1) * Self.block..<victim * Self.block]))
        #expect(throws: CoffreError.self) { _ = try reader.read(disk: 0, at: start, count: Self.block) }
        #expect(try reader.read(disk: 0, at: start + Int64(Self.block), count: Self.block)
                == Array(bytes[(victim + 1) * Self.block..<(victim + 2) * Self.block]))
    }

    @Test func anOpenReaderKeepsItsPointThroughExpiryAndCollection() async throws {
        let t = try TestVault(blockSize: Self.block)
        let bytes = Self.disk(blocks: 100, tail: 123, seed: 5)
        let point = try await t.backup("vm", ["d": bytes])
        let reader = try t.vault.openPoint(point.id)
        try t.vault.expire(point.id)
        try t.vault.collectGarbage()
        try t.vault.collectGarbage()
        #expect(try reader.read(disk: 0, at: 0, count: bytes.count) == bytes)
        reader.close()
        #expect(throws: CoffreError.self) { _ = try reader.read(disk: 0, at: 0, count: 1) }
        try t.vault.collectGarbage()
        try t.vault.collectGarbage()
        #expect(try t.storedChunks == 0)
        #expect(throws: CoffreError.self) { _ = try t.vault.openPoint(point.id) }
    }

    /// A sequential stream reads a pack's blocks together; scattered reads fetch one block each.
    @Test func aSequentialStreamReadsFewTimes() async throws {
        let fixture = try RestoreReadsTests.Fixture(RestoreReadsTests.wide)
        var generator = SeededGenerator(seed: 6)
        let bytes = generator.bytes(RestoreReadsTests.blocks * RestoreReadsTests.block)
        let point = try await fixture.backup(bytes)
        let reader = try fixture.vault.openPoint(point.id)
        defer { reader.close() }
        let before = fixture.store.packReads.load(ordering: .relaxed)
        var offset = 0
        while offset < bytes.count {
            #expect(try reader.read(disk: 0, at: Int64(offset), count: 128 << 10) == Array(bytes[offset..<offset + (128 << 10)]))
            offset += 128 << 10
        }
        let sequential = fixture.store.packReads.load(ordering: .relaxed) - before
        // The root, the page, the first block alone, then the rest of the pack in one read.
        #expect(sequential <= 4, "\(sequential) reads")
        let scattered = try fixture.vault.openPoint(point.id)
        defer { scattered.close() }
        let start = fixture.store.packReads.load(ordering: .relaxed)
        for b in stride(from: 500, to: 0, by: -50) {
            _ = try scattered.read(disk: 0, at: Int64(b * RestoreReadsTests.block), count: 100)
        }
        #expect(fixture.store.packReads.load(ordering: .relaxed) - start == 2 + 10)
    }
}
