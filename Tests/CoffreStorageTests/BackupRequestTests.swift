import CoffreCore
@testable import CoffreStorage
import CoffreTesting
import Foundation
import Testing

/// One decision per backup: the caller names the point to compare with and the point's time;
/// the vault compares with exactly that point and says, per disk, how it read.
@Suite struct BackupRequestTests {
    static let block = 16 << 10

    @Test func theRequestedBaseIsUsedEvenWhenItIsNotTheLatest() async throws {
        let t = try TestVault(blockSize: Self.block)
        var (first, bytes, g) = try await t.firstPoint(blocks: 16, blockSize: Self.block, seed: 31)
        _ = try await t.backup("vm", ["d": g.bytes(16 * Self.block)])  // a later point, unrelated content
        bytes.replaceSubrange(2 * Self.block..<3 * Self.block, with: g.bytes(Self.block))
        let device = ChangedMemoryDevice(MemoryBlockDevice(name: "d", bytes: bytes), since: first.id,
                                         changed: [Int64(2 * Self.block)..<Int64(3 * Self.block)])
        let time = Date(timeIntervalSince1970: 1_800_000_000)
        let point = try await t.vault.backup(BackupRequest(item: "vm", disks: [device], base: first.id, time: time))
        #expect(point.base == first.id)
        #expect(point.stats.bytesRead == Int64(Self.block))
        #expect(point.disks[0].readChangesOnly == true && point.disks[0].fullReadReason == nil)
        #expect(point.stored.changedOnlyDisks == 1)
        // The point's time is the one asked for, in its id too: one clock for store and catalog.
        #expect(point.time == time)
        #expect(point.id.hasPrefix("rp-20270115T080000-"))
        #expect(try await t.restore(point.id)["d"] == bytes)
    }

    @Test func aBaseThatCannotBeUsedMeansAFullReadWithTheReason() async throws {
        let t = try TestVault(blockSize: Self.block)
        let (first, bytes, _) = try await t.firstPoint(blocks: 8, blockSize: Self.block, seed: 32)
        let device = ChangedMemoryDevice(MemoryBlockDevice(name: "d", bytes: bytes), since: "rp-gone", changed: [])
        let point = try await t.vault.backup(BackupRequest(item: "vm", disks: [device], base: "rp-gone", time: Date()))
        #expect(point.base == nil)
        #expect(point.stats.bytesRead == Int64(bytes.count))
        #expect(point.disks[0].readChangesOnly == false)
        #expect(point.disks[0].fullReadReason?.contains("rp-gone") == true)
        // Still deduplicated against the whole store: nothing new was stored.
        #expect(point.stats.blocksAdded == 0)

        // Another item's point is no base either.
        let other = try await t.vault.backup(BackupRequest(item: "other", disks: [MemoryBlockDevice(name: "d", bytes: bytes)],
                                                           base: first.id, time: Date()))
        #expect(other.base == nil)
        #expect(try await t.restore(other.id)["d"] == bytes)
    }

    @Test func changesCountingFromAnotherPointThanTheBaseSayWhy() async throws {
        let t = try TestVault(blockSize: Self.block)
        let (first, bytes, _) = try await t.firstPoint(blocks: 8, blockSize: Self.block, seed: 33)
        let second = try await t.backup("vm", ["d": bytes])
        let device = ChangedMemoryDevice(MemoryBlockDevice(name: "d", bytes: bytes), since: first.id, changed: [])
        let point = try await t.vault.backup(BackupRequest(item: "vm", disks: [device], base: second.id, time: Date()))
        #expect(point.base == second.id)
        #expect(point.disks[0].readChangesOnly == false)
        #expect(point.disks[0].fullReadReason?.contains(first.id) == true)
    }
}
