import Foundation
import Testing

@Suite("CLI corruption detection")
struct CorruptionTests {
    @Test("a flipped byte in a pack names the damaged chunk and breaks exactly the points using it")
    func flippedByte() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            var rng = SplitMix64(seed: 0xC0_4417)
            let bs = 16 * KiB
            let vault = tmp.appendingPathComponent("vault")
            try coffre.createVault(vault, blockSize: "16KiB")
            let packsDir = vault.appendingPathComponent("packs")
            let src = try makeDir(tmp.appendingPathComponent("src"))
            var disk = try Disk(create: src.appendingPathComponent("root.img"), size: 512 * KiB + 700)
            try disk.write(rng.bytes(disk.size), at: 0)

            let p1 = try coffre.backup(vault, item: "vm", disks: [disk.url])
            let content1 = disk.content
            let packsBefore = Set(regularFiles(under: packsDir).map(\.path))
            #expect(packsBefore.count == 1, "a small backup writes one pack, got \(packsBefore.count)")
            let stats = try coffre.ok(["vault", "stats", "--vault", vault.path, "--json"])
            #expect(stats.stdout.contains("\"storedChunks\" : 33"), "33 distinct non-zero blocks: \(stats.stdout)")

            // Point 2 differs from point 1 in exactly one block: its new chunk is used by point 2
            // only, and is the first object of the one pack point 2 writes (then its page and root).
            let newBlock = rng.bytes(bs)
            try disk.write(newBlock, at: 5 * bs)
            let p2 = try coffre.backup(vault, item: "vm", disks: [disk.url])
            let content2 = disk.content
            let newPacks = regularFiles(under: packsDir).filter { !packsBefore.contains($0.path) }
            try #require(newPacks.count == 1, "one changed block must add one pack, got \(newPacks)")
            let victim = newPacks[0]
            let victimID = try sha256Hex(newBlock)

            let (clean, cleanReport) = try coffre.verify(vault)
            #expect(clean.succeeded, "verify of an intact vault: \(clean)")
            #expect(cleanReport?.clean == true)

            // Flip one byte in the middle of the chunk's frame (the first 12 bytes are its header).
            var bytes = try readFile(victim)
            let at = 12 + bs / 2
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

            // A missing pack: what it held is reported missing, and only point 2 breaks.
            try FileManager.default.removeItem(at: victim)
            let (r2, report2) = try coffre.verify(vault)
            #expect(!r2.signaled && r2.status == 3, "verify with a missing pack must exit 3: \(r2)")
            #expect(report2?.missingChunks.isEmpty == false, "missingChunks: \(r2)")
            #expect(report2?.brokenPoints == [p2])
            try expectRestoreMatches(coffre, vault: vault, point: p1, disks: [(disk.name, content1)],
                                     into: tmp.appendingPathComponent("restore-good-2"))
        }
    }
}

/// SHA-256 of bytes, in hex (the id of a block in an unencrypted vault), by `sha256sum`.
func sha256Hex(_ bytes: Data) throws -> String {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("coffre-sha-\(UUID().uuidString)")
    try bytes.write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    process.arguments = [file.path]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(String(decoding: output, as: UTF8.self).prefix(64))
}
