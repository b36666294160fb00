import Foundation
import Testing

@Suite("CLI garbage collection property")
struct GCPropertyTests {
    @Test("after expiring the oldest of 3 points, storedChunks == distinct non-zero blocks left")
    func storedChunksMatchRemainingPoints() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            var rng = SplitMix64(seed: 0x6C_0003)
            let bs = 16 * KiB
            let vault = tmp.appendingPathComponent("vault")
            // Plain `vault create` prints the vault path (one line).
            let created = try coffre.ok(["vault", "create", CLIStore.name(vault), "--block-size", "16KiB"])
            #expect(created.stdoutLines.count == 1 && created.stdoutLines.first?.hasSuffix(CLIStore.s3 ? CLIStore.name(vault) : "vault") == true,
                    "vault create must print the vault path: \(created)")
            let src = try makeDir(tmp.appendingPathComponent("src"))

            var x = try Disk(create: src.appendingPathComponent("x.img"), size: 1 * MiB + 3000)
            try x.write(rng.bytes(x.size), at: 0)
            let dup = rng.bytes(bs)
            try x.write(dup, at: 3 * bs)
            try x.write(dup, at: 9 * bs)              // duplicate inside a disk
            try x.write(Data(count: 2 * bs), at: 20 * bs) // explicit zero blocks
            var y = try Disk(create: src.appendingPathComponent("y.img"), size: 512 * KiB)
            try y.write(dup, at: 0)                   // duplicate across disks
            try y.write(rng.bytes(5 * bs + 100), at: 8 * bs)

            var snapshots: [[Data]] = []
            var ids: [String] = []
            func backup() throws {
                ids.append(try coffre.backup(vault, item: "db", disks: [x.url, y.url]))
                snapshots.append([x.content, y.content])
            }
            try backup()
            // Point 2: rewrite blocks (their old content only lives in point 1).
            for i in [1, 2, 30, 40] { try x.write(rng.bytes(bs), at: i * bs) }
            try y.write(rng.bytes(bs), at: 9 * bs)
            try backup()
            // Point 3: more changes, including a partial tail and a block zeroed.
            try x.write(rng.bytes(500), at: x.size - 500)
            try x.write(Data(count: bs), at: 5 * bs)
            try y.write(dup, at: 20 * bs)
            try y.write(rng.bytes(bs), at: 10 * bs)
            try backup()

            let all = distinctNonZeroBlocks(snapshots.flatMap { $0 }, blockSize: bs)
            let before = try coffre.stats(vault)
            #expect(before.points == 3)
            #expect(before.storedChunks == all.count,
                    "before expiry: storedChunks \(before.storedChunks), distinct non-zero blocks \(all.count)")

            let points = try coffre.points(vault, item: "db")
            #expect(points.map(\.id) == ids)
            try coffre.expire(vault, point: ids[0])  // runs gc

            let remaining = distinctNonZeroBlocks(snapshots[1...].flatMap { $0 }, blockSize: bs)
            try #require(remaining.count < all.count, "test setup: point 1 must own blocks")
            let after = try coffre.stats(vault)
            #expect(after.points == 2)
            #expect(after.storedChunks == remaining.count,
                    "after expiry+gc: storedChunks \(after.storedChunks), distinct non-zero blocks \(remaining.count)")
            #expect(after.storedBytes < before.storedBytes)
            #expect(try coffre.points(vault, item: "db").map(\.id) == Array(ids[1...]))

            // blocksOnlyHere of the oldest point before expiry equals what gc could remove.
            let onlyInFirst = all.subtracting(remaining).count
            #expect(points[0].blocksOnlyHere == onlyInFirst,
                    "blocksOnlyHere \(points[0].blocksOnlyHere) vs \(onlyInFirst) blocks only in point 1")

            // A second gc finds nothing more to collect.
            let gc = try coffre.json(GCReport.self, ["vault", "gc", "--vault", CLIStore.name(vault), "--json"])
            #expect(gc.removedChunks == 0)
            #expect(gc.keptChunks == remaining.count)

            // Remaining points still restore.
            try expectRestoreMatches(coffre, vault: vault, point: ids[1],
                                     disks: [(x.name, snapshots[1][0]), (y.name, snapshots[1][1])],
                                     into: tmp.appendingPathComponent("r1"))
        }
    }
}
