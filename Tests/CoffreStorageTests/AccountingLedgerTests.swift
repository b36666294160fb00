import CoffreCore
@testable import CoffreStorage
import CoffreTesting
import Foundation
import Testing

/// The accounting kept up to date by commits and expiries equals the accounting walked from
/// scratch, after any sequence of backups, expiries and collections, in this process or another.
@Suite struct AccountingLedgerTests {
    static let block = 16 << 10

    /// A fresh `Vault` of the same folder: a process that walks every point once.
    func walkedFromScratch(_ t: TestVault) throws -> [String: PointAccounting] {
        try t.reopen().accounting()
    }

    /// Per item, from every live point's references, without the ledger: the objects no point
    /// of another item references, and their stored sizes.
    func itemsByBruteForce(_ vault: Vault) throws -> [String: ItemAccounting] {
        let workspace = CodecWorkspace(codec: vault.codec)
        var byItem: [String: AccountingLedger.References] = [:]
        for manifest in try vault.points() {
            let references = try vault.references(of: manifest, with: workspace)
            byItem[manifest.item, default: .init()].chunks.formUnion(references.chunks)
            byItem[manifest.item, default: .init()].indexes.formUnion(references.indexes)
        }
        var result: [String: ItemAccounting] = [:]
        for (item, references) in byItem {
            let others = byItem.filter { $0.key != item }.map(\.value)
            let chunks = references.chunks.filter { id in !others.contains { $0.chunks.contains(id) } }
            let indexes = references.indexes.filter { id in !others.contains { $0.indexes.contains(id) } }
            let bytes = chunks.reduce(Int64(0)) { $0 + (vault.storedSize(.chunk, $1) ?? -1_000_000) }
                + indexes.reduce(Int64(0)) { $0 + (vault.storedSize(.index, $1) ?? -1_000_000) }
            result[item] = ItemAccounting(blocksOnlyHere: chunks.count, bytesOnlyHere: bytes)
        }
        return result
    }

    @Test(arguments: [1, 2, 3, 4])
    func keptUpToDateEqualsWalkedFromScratch(seed: UInt64) async throws {
        let t = try TestVault(blockSize: Self.block)
        var g = SeededGenerator(seed: seed)
        // Two items whose disks share some blocks (a common base image), each 16 blocks.
        let common = g.bytes(8 * Self.block)
        var disks = ["a": common + g.bytes(8 * Self.block), "b": common + g.bytes(8 * Self.block)]
        _ = try t.vault.accounting()  // valid from the start: every later change is applied to it
        var live: [String] = []
        for step in 0..<24 {
            switch Int.random(in: 0..<10, using: &g) {
            case 0..<6:
                let item = Bool.random(using: &g) ? "a" : "b"
                // Rewrite one block, sometimes with one the other item holds, sometimes zeros.
                let index = Int.random(in: 0..<16, using: &g) * Self.block
                let content: [UInt8] = switch Int.random(in: 0..<3, using: &g) {
                case 0: Array(disks[item == "a" ? "b" : "a"]![index..<index + Self.block])
                case 1: [UInt8](repeating: 0, count: Self.block)
                default: g.bytes(Self.block)
                }
                disks[item]!.replaceSubrange(index..<index + Self.block, with: content)
                live.append(try await t.backup(item, ["disk": disks[item]!]).id)
            case 6..<9 where !live.isEmpty:
                try t.vault.expire(live.remove(at: Int.random(in: 0..<live.count, using: &g)))
            default:
                try t.vault.collectGarbage()
            }
            let kept = try t.vault.accounting()
            #expect(kept == (try walkedFromScratch(t)), "step \(step)")
            #expect(Set(kept.keys) == Set(live))
            let items = try t.vault.itemAccounting()
            #expect(Set(items.keys) == Set(try t.vault.points().map(\.item)))
            #expect(items == (try itemsByBruteForce(t.vault)), "step \(step)")
            #expect(items == (try t.reopen().itemAccounting()), "step \(step)")
        }
        // Kept up to date, not walked again: one walk, at the first read.
        #expect(t.vault.ledger.rebuilds == 1)
    }

    @Test func pointsWrittenAndExpiredByAnotherProcessAreNoticed() async throws {
        let t = try TestVault(blockSize: Self.block)
        var (first, disk, g) = try await t.firstPoint(disk: "disk", blocks: 8, blockSize: Self.block, seed: 9)
        #expect(try t.vault.accounting()[first.id]?.blocksOnlyHere == 8)

        // Another process (another `Vault` of the same folder) backs up a point that shares 7 blocks.
        let other = try t.reopen()
        disk.replaceSubrange(0..<Self.block, with: g.bytes(Self.block))
        let second = try await other.backup(item: "vm", disks: [MemoryBlockDevice(name: "disk", bytes: disk)])
        var kept = try t.vault.accounting()
        #expect(kept[first.id]?.blocksOnlyHere == 1)
        #expect(kept[second.id]?.blocksOnlyHere == 1)
        #expect(kept == (try walkedFromScratch(t)))
        #expect(t.vault.ledger.rebuilds == 1, "a point added elsewhere is walked alone")

        // It expires the first point: its index can no longer be walked here, so this process
        // walks everything again.
        try other.expire(first.id)
        kept = try t.vault.accounting()
        #expect(Set(kept.keys) == [second.id])
        #expect(kept[second.id]?.blocksOnlyHere == 8)
        #expect(kept == (try walkedFromScratch(t)))
        #expect(t.vault.ledger.rebuilds == 2)
    }

    @Test func aDamagedManifestIsLeftOutAndTheRestStillCounts() async throws {
        let t = try TestVault(blockSize: Self.block)
        let (first, disk, _) = try await t.firstPoint(disk: "disk", blocks: 4, blockSize: Self.block, seed: 10)
        let second = try await t.backup("vm", ["disk": disk])
        #expect(try t.vault.accounting()[first.id]?.blocksOnlyHere == 0)
        // The second manifest is damaged on disk (verify names it); a fresh process leaves it out.
        try t.damage("points/" + second.id) { $0 - 1 }
        let fresh = try walkedFromScratch(t)
        #expect(Set(fresh.keys) == [first.id])
        #expect(fresh[first.id]?.blocksOnlyHere == 4)
    }
}
