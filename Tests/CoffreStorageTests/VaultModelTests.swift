import CoffreCore
@testable import CoffreStorage
import CoffreTesting
import Foundation
import Testing

/// Model-based property test: random writes, backups, expiries and collections on several
/// disks of several items, and collections with and without repacking. After every step every
/// live point restores byte-exact; after a collection at most 5 % of the stored bytes are
/// unused, and once one repacked every pack with garbage the vault stores exactly the distinct
/// non-zero blocks of live points.
@Suite struct VaultModelTests {
    static let fixedSeeds: [UInt64] = [1, 2, 3, 0xC0FFEE, 20261122]

    @Test(arguments: fixedSeeds + (0..<3).map { _ in UInt64.random(in: 0...UInt64.max) })
    func randomOperations(seed: UInt64) async throws {
        try await run(seed: seed, encrypted: seed % 2 == 0)
    }

    /// The same on a `MemoryChunkStore`: packing, collection and repacking are the vault's, the
    /// same code whatever the backend.
    @Test(arguments: fixedSeeds.prefix(3))
    func randomOperationsOnTheMemoryStore(seed: UInt64) async throws {
        try await run(seed: seed, encrypted: seed % 2 == 1, store: .memory)
    }

    func run(seed: UInt64, encrypted: Bool, store: TestStore = .standard) async throws {
        var g = SeededGenerator(seed: seed)
        let block = 16 << 10
        let t = try TestVault(blockSize: block, encrypted: encrypted, store: store)
        // Items with 1–3 disks of 0–40 blocks plus a partial tail; content drawn from a small
        // pool of blocks so that blocks repeat across disks, items and time.
        let pool = (0..<12).map { _ in g.bytes(block) }
        var items: [String: [String: [UInt8]]] = [:]
        for i in 0..<3 {
            var disks: [String: [UInt8]] = [:]
            for d in 0..<Int.random(in: 1...3, using: &g) {
                disks["disk\(d).img"] = [UInt8](repeating: 0, count: Int.random(in: 0...40, using: &g) * block + Int.random(in: 0..<block, using: &g))
            }
            items["vm\(i)"] = disks
        }
        var live: [(id: String, disks: [String: [UInt8]])] = []
        var garbagePending = false

        for step in 0..<30 {
            switch Int.random(in: 0..<10, using: &g) {
            case 0..<4:  // scattered writes into one disk of one item
                let item = items.keys.sorted().randomElement(using: &g)!
                let disk = items[item]!.keys.sorted().randomElement(using: &g)!
                var bytes = items[item]![disk]!
                for _ in 0..<Int.random(in: 1...6, using: &g) where !bytes.isEmpty {
                    let at = Int.random(in: 0..<bytes.count, using: &g)
                    let length = min(bytes.count - at, Int.random(in: 1...(2 * block), using: &g))
                    let source: [UInt8] = switch Int.random(in: 0..<3, using: &g) {
                    case 0: [UInt8](repeating: 0, count: length)
                    case 1: Array(pool.randomElement(using: &g)!.prefix(length)) + [UInt8](repeating: 7, count: max(0, length - block))
                    default: g.bytes(length)
                    }
                    bytes.replaceSubrange(at..<at + length, with: source.prefix(length))
                }
                items[item]![disk] = bytes
            case 4..<7:
                let item = items.keys.sorted().randomElement(using: &g)!
                let point = try await t.backup(item, items[item]!)
                live.append((point.id, items[item]!))
            case 7..<9:
                guard !live.isEmpty else { continue }
                let victim = live.remove(at: Int.random(in: 0..<live.count, using: &g))
                try t.vault.expire(victim.id)
                garbagePending = true
            default:
                // A collection that repacks every pack with garbage, or one with the default 5 % limit.
                let everything = Bool.random(using: &g)
                try t.vault.collectGarbage(unusedLimit: everything ? 0 : Vault.maxUnusedShare)
                garbagePending = !everything
                #expect(try t.vault.stats().unusedShare <= Vault.maxUnusedShare + 1e-9, "seed \(seed) step \(step)")
            }

            let expected = distinctNonZeroBlocks(live.flatMap { $0.disks.values }, blockSize: block)
            let stored = try t.storedChunks
            if garbagePending {
                #expect(stored >= expected, "seed \(seed) step \(step)")
            } else {
                #expect(stored == expected, "seed \(seed) step \(step)")
            }
            #expect(try t.vault.points().map(\.id).sorted() == live.map(\.id).sorted())
            for point in live {
                let restored = try await t.restore(point.id)
                #expect(restored == point.disks, "seed \(seed) step \(step) point \(point.id)")
            }
        }
        try t.vault.collectGarbage(unusedLimit: 0)
        #expect(try t.storedChunks == distinctNonZeroBlocks(live.flatMap { $0.disks.values }, blockSize: block))
        #expect(try t.vault.verify().clean)
    }
}
