import CoffreCore
@testable import CoffreStorage
import CoffreTesting
import Foundation
import Testing

/// Changed-block tracking (B3 on fabrics with dirty bitmaps): the vault reads only what the
/// fabric says changed, and only when the changes count from the point it compares with.
@Suite struct ChangeTrackingTests {
    let block = 16 << 10

    /// A 64-block disk fully written, then blocks 3 and 40–41 changed (one write spanning two).
    func scenario() async throws -> (TestVault, RecoveryPointManifest, [UInt8], [Range<Int64>]) {
        let t = try TestVault(blockSize: block)
        var g = SeededGenerator(seed: 21)
        var bytes = g.bytes(64 * block)
        let first = try await t.backup("vm", ["d": bytes])
        bytes.replaceSubrange(3 * block + 100..<3 * block + 200, with: g.bytes(100))
        bytes.replaceSubrange(40 * block + 5..<41 * block + 7, with: g.bytes(block + 2))
        let written: [Range<Int64>] = [Int64(3 * block + 100)..<Int64(3 * block + 200),
                                       Int64(40 * block + 5)..<Int64(41 * block + 7)]
        return (t, first, bytes, written)
    }

    @Test func onlyChangedBlocksAreReadAndTheRestComesFromTheBasePoint() async throws {
        let (t, first, bytes, written) = try await scenario()
        let device = ChangedMemoryDevice(MemoryBlockDevice(name: "d", bytes: bytes), since: first.id, changed: written)
        let second = try await t.vault.backup(item: "vm", disks: [device])
        // Blocks 3, 40 and 41: three blocks read, nothing else touched.
        #expect(second.stats.bytesRead == Int64(3 * block))
        #expect(Set(device.readRanges.map { $0.lowerBound / Int64(block) }) == [3, 40, 41])
        #expect(second.stats.changedOnlyDisks == 1)
        #expect(second.stats.blocksChanged == 3)
        #expect(second.disks[0].blocks == 64)
        #expect(try await t.restore(second.id)["d"] == bytes)
        #expect(try t.vault.verify().clean)
    }

    @Test func noChangeReusesEveryPageWithoutReading() async throws {
        let t = try TestVault(blockSize: block)
        var g = SeededGenerator(seed: 22)
        let bytes = g.bytes(32 * block)
        let first = try await t.backup("vm", ["d": bytes])
        let device = ChangedMemoryDevice(MemoryBlockDevice(name: "d", bytes: bytes), since: first.id, changed: [])
        let second = try await t.vault.backup(item: "vm", disks: [device])
        #expect(device.readRanges.isEmpty)
        #expect(second.stats.bytesRead == 0 && second.stats.indexObjectsAdded == 0)
        #expect(second.disks[0].rootID == first.disks[0].rootID)
        #expect(try await t.restore(second.id)["d"] == bytes)
    }

    @Test func changesCountingFromAnotherPointAreIgnored() async throws {
        let (t, _, bytes, written) = try await scenario()
        // The fabric's changes count from a point the vault does not compare with: a full read.
        let device = ChangedMemoryDevice(MemoryBlockDevice(name: "d", bytes: bytes), since: "rp-elsewhere", changed: written)
        let second = try await t.vault.backup(item: "vm", disks: [device])
        #expect(second.stats.bytesRead == Int64(bytes.count))
        #expect(second.stats.changedOnlyDisks == 0)
        #expect(try await t.restore(second.id)["d"] == bytes)
    }

    @Test func aResizedDiskIsReadInFull() async throws {
        let (t, first, bytes, written) = try await scenario()
        let grown = bytes + [UInt8](repeating: 7, count: block)
        let device = ChangedMemoryDevice(MemoryBlockDevice(name: "d", bytes: grown), since: first.id, changed: written)
        let second = try await t.vault.backup(item: "vm", disks: [device])
        #expect(second.stats.changedOnlyDisks == 0)
        #expect(second.stats.bytesRead == Int64(grown.count))
        #expect(try await t.restore(second.id)["d"] == grown)
    }
}
