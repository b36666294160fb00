import Foundation
import Testing

@Suite("CLI corruption detection")
struct CorruptionTests {
    @Test("a flipped byte in one chunk is reported, breaks exactly the points using it")
    func flippedByte() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            var rng = SplitMix64(seed: 0xC0_4417)
            let bs = 16 * KiB
            let vault = tmp.appendingPathComponent("vault")
            try coffre.createVault(vault, blockSize: "16KiB")
            let chunksDir = vault.appendingPathComponent("chunks")
            let src = try makeDir(tmp.appendingPathComponent("src"))
            var disk = try Disk(create: src.appendingPathComponent("root.img"), size: 512 * KiB + 700)
            try disk.write(rng.bytes(disk.size), at: 0)

            let p1 = try coffre.backup(vault, item: "vm", disks: [disk.url])
            let content1 = disk.content
            let chunksBefore = Set(regularFiles(under: chunksDir).map(\.path))
            #expect(chunksBefore.count == 33, "33 distinct non-zero blocks, \(chunksBefore.count) chunk files")

            // Point 2 differs from point 1 in exactly one block: its new chunk is used by point 2 only.
            try disk.write(rng.bytes(bs), at: 5 * bs)
            let p2 = try coffre.backup(vault, item: "vm", disks: [disk.url])
            let content2 = disk.content
            let newChunks = regularFiles(under: chunksDir).filter { !chunksBefore.contains($0.path) }
            try #require(newChunks.count == 1, "one changed block must add one chunk file, got \(newChunks)")
            let victim = newChunks[0]
            let victimID = victim.lastPathComponent

            let (clean, cleanReport) = try coffre.verify(vault)
            #expect(clean.succeeded, "verify of an intact vault: \(clean)")
            #expect(cleanReport?.clean == true)

            // Flip one byte in the middle of the chunk file.
            var bytes = try readFile(victim)
            let at = bytes.count / 2
            bytes[at] ^= 0x5A
            try bytes.write(to: victim)

            let (r, report) = try coffre.verify(vault)
            #expect(!r.signaled && r.status == 3, "verify of a damaged vault must exit 3: \(r)")
            let rep = try #require(report, "verify --json output: \(r)")
            #expect(rep.clean == false)
            #expect(rep.damagedChunks == [victimID], "damagedChunks \(rep.damagedChunks), flipped \(victimID)")
            #expect(rep.missingChunks.isEmpty)
            #expect(rep.brokenPoints == [p2], "brokenPoints \(rep.brokenPoints), expected only \(p2) (not \(p1))")
            #expect(rep.checkedChunks >= 34)

            // Restoring the broken point fails cleanly and leaves nothing behind.
            let target = try makeDir(tmp.appendingPathComponent("restore-broken"))
            let bad = try coffre.run(["image", "restore", "--vault", vault.path, "--point", p2,
                                      "--to", target.path, "--no-progress"])
            expectOneLineError(bad, "restore of a broken point")
            #expect(directoryEntries(target).isEmpty, "failed restore left files: \(directoryEntries(target))")
            _ = content2

            // The unaffected point still restores exactly.
            try expectRestoreMatches(coffre, vault: vault, point: p1, disks: [(disk.name, content1)],
                                     into: tmp.appendingPathComponent("restore-good"))

            // A missing chunk is reported as missing.
            try FileManager.default.removeItem(at: victim)
            let (r2, report2) = try coffre.verify(vault)
            #expect(!r2.signaled && r2.status == 3, "verify with a missing chunk must exit 3: \(r2)")
            #expect(report2?.missingChunks == [victimID], "missingChunks: \(r2)")
            #expect(report2?.brokenPoints == [p2])
        }
    }
}
