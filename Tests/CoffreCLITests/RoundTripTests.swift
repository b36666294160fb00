import Foundation
import Testing

@Suite("CLI round trip")
struct RoundTripTests {
    @Test("two backups of a two-disk item restore byte for byte, sparse")
    func roundTrip() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            var rng = SplitMix64(seed: 0x5EED_0001)
            let bs = 16 * KiB
            let vault = tmp.appendingPathComponent("vault")
            let created = try coffre.createVault(vault, blockSize: "16KiB")
            #expect(created.blockSize == bs)
            #expect(created.encrypted == false)
            #expect(CLIStore.s3 || FileManager.default.fileExists(atPath: vault.appendingPathComponent("coffre-vault.json").path))

            let src = try makeDir(tmp.appendingPathComponent("src"))
            // Disk A: 3 MiB, mostly holes.
            var a = try Disk(create: src.appendingPathComponent("system.img"), size: 3 * MiB)
            try a.write(rng.bytes(256 * KiB), at: 0)
            try a.write(rng.bytes(100 * KiB), at: 1 * MiB + 4096)  // not block aligned
            let repeated = rng.bytes(bs)
            try a.write(repeated, at: 2 * MiB)
            try a.write(repeated, at: 2 * MiB + 5 * bs)           // same content twice
            try a.write(rng.bytes(3000), at: 3 * MiB - 3000)       // data at the very end
            // Disk B: fully written, size not a multiple of the block size.
            var b = try Disk(create: src.appendingPathComponent("data.img"), size: 1 * MiB + 5000)
            try b.write(rng.bytes(b.size), at: 0)

            let snapshot1 = [(a.name, a.content), (b.name, b.content)]
            let p1 = try coffre.backup(vault, item: "vm-web", disks: [a.url, b.url])

            // Modify a few blocks: one in data, one inside a hole, the partial tail of B.
            try a.write(rng.bytes(bs), at: 4 * bs)
            try a.write(rng.bytes(bs), at: 2 * MiB + 20 * bs)
            try b.write(rng.bytes(700), at: b.size - 700)
            try b.write(rng.bytes(10), at: 7 * bs + 123)
            let snapshot2 = [(a.name, a.content), (b.name, b.content)]
            let r2 = try coffre.backupJSON(vault, item: "vm-web", disks: [a.url, b.url])
            #expect(r2.id != p1)

            // points --json: 2 points, documented fields, oldest first.
            let listing = try coffre.ok(["image", "points", "--vault", CLIStore.name(vault), "--item", "vm-web", "--json"])
            let points = try decodeJSON([PointInfo].self, listing.stdout, context: listing)
            try #require(points.count == 2, "expected 2 points: \(listing)")
            #expect(points.map(\.id) == [p1, r2.id], "points must be listed oldest first")
            let raw = try #require(try jsonObject(listing.stdout) as? [[String: Any]])
            for entry in raw {
                for key in ["id", "time", "item", "disks", "blocksAdded", "blocksOnlyHere", "bytesFreedIfExpired"] {
                    #expect(entry[key] != nil, "point entry lacks `\(key)`: \(entry)")
                }
            }
            for point in points {
                #expect(point.item == "vm-web")
                #expect(point.disks.count == 2)
                for (disk, expected) in zip(point.disks.sorted { $0.size > $1.size }, [a, b]) {
                    #expect(disk.name.hasSuffix(expected.name), "disk name \(disk.name) vs \(expected.name)")
                    #expect(disk.size == expected.size)
                }
                #expect(point.blocksOnlyHere >= 0 && point.bytesFreedIfExpired >= 0)
            }
            #expect(points[0].blocksAdded > points[1].blocksAdded,
                    "first backup must add more blocks: \(points[0].blocksAdded) vs \(points[1].blocksAdded)")
            #expect(points[1].blocksAdded >= 1 && points[1].blocksAdded <= 4,
                    "second backup changed 4 blocks, reported \(points[1].blocksAdded)")
            #expect(r2.blocksAdded == points[1].blocksAdded)

            // Restore each point into its own directory.
            for (i, (id, snap)) in [(p1, snapshot1), (r2.id, snapshot2)].enumerated() {
                let dir = tmp.appendingPathComponent("restore\(i)")
                try expectRestoreMatches(coffre, vault: vault, point: id,
                                         disks: snap.map { (name: $0.0, content: $0.1) }, into: dir)
                // Sparse where the source had holes.
                let restoredA = dir.appendingPathComponent(a.name)
                let slack = 256  // 128 KiB in 512-byte sectors
                let srcBlocks = try allocatedBlocks(a.url)
                let dstBlocks = try allocatedBlocks(restoredA)
                #expect(dstBlocks <= srcBlocks + slack,
                        "restored \(a.name) is not sparse: \(dstBlocks) sectors vs source \(srcBlocks)")
                #expect(dstBlocks * 512 < a.size / 2, "restored \(a.name) allocates \(dstBlocks * 512) bytes")
            }

            // restore into a non-empty directory without --overwrite must not clobber files
            let dir0 = tmp.appendingPathComponent("restore0")
            let again = try coffre.run(["image", "restore", "--vault", CLIStore.name(vault), "--point", r2.id,
                                        "--to", dir0.path, "--no-progress"])
            if again.succeeded {
                Issue.record("restore over existing files without --overwrite succeeded: \(again)")
            } else {
                expectOneLineError(again, "restore without --overwrite")
                #expect(try readFile(dir0.appendingPathComponent(a.name)) == snapshot1[0].1,
                        "a refused restore must leave existing files alone")
            }
            try coffre.ok(["image", "restore", "--vault", CLIStore.name(vault), "--point", r2.id,
                           "--to", dir0.path, "--overwrite", "--no-progress"])
            #expect(try readFile(dir0.appendingPathComponent(a.name)) == snapshot2[0].1)
            #expect(try readFile(dir0.appendingPathComponent(b.name)) == snapshot2[1].1)
        }
    }
}
