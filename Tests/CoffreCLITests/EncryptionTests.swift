import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("CLI encrypted vaults")
struct EncryptionTests {
    /// A disk of compressible text followed by incompressible random bytes.
    static func makeDisk(in dir: URL) throws -> Disk {
        var rng = SplitMix64(seed: 0xE4C_0004)
        var text = ""
        var i = 0
        while text.utf8.count < 1 * MiB {
            text += "line \(i) value \(i &* 7919 % 100_003) the quick brown fox jumps over \(i % 97)\n"
            i += 1
        }
        var disk = try Disk(create: dir.appendingPathComponent("notes.img"), size: 1 * MiB + 512 * KiB)
        try disk.write(Data(text.utf8.prefix(1 * MiB)), at: 0)
        try disk.write(rng.bytes(512 * KiB), at: 1 * MiB)
        return disk
    }

    /// ~200 sampled 24-byte runs: half from the text, half from the random part.
    static func samples(of content: Data) -> [Data] {
        var rng = SplitMix64(seed: 0x5A_4D9)
        var out: [Data] = []
        for k in 0..<200 {
            let region = k % 2 == 0 ? 0..<(1 * MiB - 24) : (1 * MiB)..<(content.count - 24)
            let at = rng.int(region)
            out.append(content.subdata(in: at..<(at + 24)))
        }
        return out
    }

    /// How many of `needles` occur in some regular file of the vault.
    static func occurrences(of needles: [Data], in vault: URL) throws -> Int {
        let files = try regularFiles(under: vault).map { try readFile($0) }
        return needles.filter { needle in files.contains { contains($0, needle) } }.count
    }

    /// 32 raw bytes, or 64 hex digits (optionally followed by whitespace).
    static func decodeKey(_ file: Data) -> Data? {
        if file.count == 32 { return file }
        let text = String(decoding: file, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.utf8.count == 64 else { return nil }
        var out = Data()
        var i = text.startIndex
        while i < text.endIndex {
            let j = text.index(i, offsetBy: 2)
            guard let b = UInt8(text[i..<j], radix: 16) else { return nil }
            out.append(b)
            i = j
        }
        return out
    }

    @Test("encrypted vault: no plaintext or key in the vault, exact restore, wrong key refused")
    func encrypted() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            let src = try makeDir(tmp.appendingPathComponent("src"))
            let disk = try Self.makeDisk(in: src)
            let vault = tmp.appendingPathComponent("vault")
            let key = tmp.appendingPathComponent("keys/vault.key")
            _ = try makeDir(key.deletingLastPathComponent())
            #expect(!FileManager.default.fileExists(atPath: key.path))
            let created = try coffre.createVault(vault, blockSize: "64KiB", key: key)
            #expect(created.encrypted == true)
            let keyFileBytes = try readFile(key)
            // The contract says 32 random bytes; accept them raw or written as 64 hex digits.
            let keyBytes = try #require(Self.decodeKey(keyFileBytes),
                                        "key file must hold 32 bytes (raw or 64 hex digits), has \(keyFileBytes.count) bytes")
            #expect(Set(keyBytes).count > 8, "the key does not look random")
            let mode = try fileMode(key)
            #expect(mode == 0o600, "key file mode \(String(mode, radix: 8))")

            let id = try coffre.backup(vault, item: "notes", disks: [disk.url])
            #expect(try coffre.points(vault, item: "notes").map(\.id) == [id])

            let found = try Self.occurrences(of: Self.samples(of: disk.content), in: vault)
            #expect(found == 0, "\(found) of 200 plaintext runs found in the encrypted vault")
            #expect(try Self.occurrences(of: [keyBytes], in: vault) == 0, "the key's bytes are stored in the vault")
            #expect(try Self.occurrences(of: [keyFileBytes], in: vault) == 0, "the key file's bytes are stored in the vault")
            // The key as hex text (upper/lower case) is not stored either.
            let hex = keyBytes.map { String(format: "%02x", $0) }.joined()
            #expect(try Self.occurrences(of: [Data(hex.utf8), Data(hex.uppercased().utf8)], in: vault) == 0,
                    "the key's hex digits are stored in the vault")

            // The key is found via the recorded path.
            try expectRestoreMatches(coffre, vault: vault, point: id, disks: [(disk.name, disk.content)],
                                     into: tmp.appendingPathComponent("restore"))
            // Explicit right key works too.
            let explicit = try makeDir(tmp.appendingPathComponent("restore-explicit"))
            try coffre.ok(["image", "restore", "--vault", vault.path, "--point", id, "--to", explicit.path,
                           "--no-progress", "--encryption-key", key.path])
            #expect(try readFile(explicit.appendingPathComponent(disk.name)) == disk.content)

            // A different key is refused.
            var rng = SplitMix64(seed: 0x07E4)
            let other = tmp.appendingPathComponent("keys/other.key")
            try rng.bytes(32).write(to: other)
            chmod(other.path, 0o600)
            let before = treeListing(vault)
            let wrongDir = try makeDir(tmp.appendingPathComponent("restore-wrong"))
            let wrong = try coffre.run(["image", "restore", "--vault", vault.path, "--point", id,
                                        "--to", wrongDir.path, "--no-progress", "--encryption-key", other.path])
            expectOneLineError(wrong, "restore with a wrong key")
            #expect(wrong.stderr.contains("WrongEncryptionKey"), "stderr: \(wrong.stderr)")
            #expect(directoryEntries(wrongDir).isEmpty)

            let wrongEnv = try coffre.run(["image", "restore", "--vault", vault.path, "--point", id,
                                           "--to", wrongDir.path, "--no-progress"],
                                          env: ["COFFRE_ENCRYPTION_KEY_FILE": other.path])
            expectOneLineError(wrongEnv, "restore with a wrong key from COFFRE_ENCRYPTION_KEY_FILE")
            #expect(wrongEnv.stderr.contains("WrongEncryptionKey"), "stderr: \(wrongEnv.stderr)")
            #expect(directoryEntries(wrongDir).isEmpty)

            let wrongBackup = try coffre.run(["image", "backup", "--vault", vault.path, "--item", "notes",
                                              "--no-progress", "--encryption-key", other.path, disk.url.path])
            expectOneLineError(wrongBackup, "backup with a wrong key")
            #expect(wrongBackup.stderr.contains("WrongEncryptionKey"), "stderr: \(wrongBackup.stderr)")
            #expect(treeListing(vault) == before, "a refused command changed the vault")
            #expect(try readFile(key) == keyFileBytes, "the key file changed")
        }
    }

    @Test("control: an unencrypted vault does contain plaintext runs (the check can fail)")
    func unencryptedControl() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            let src = try makeDir(tmp.appendingPathComponent("src"))
            let disk = try Self.makeDisk(in: src)
            let vault = tmp.appendingPathComponent("vault")
            let created = try coffre.createVault(vault, blockSize: "64KiB")
            #expect(created.encrypted == false)
            let id = try coffre.backup(vault, item: "notes", disks: [disk.url])
            let found = try Self.occurrences(of: Self.samples(of: disk.content), in: vault)
            #expect(found > 0, "no plaintext run found in an unencrypted vault: the search is broken")
            try expectRestoreMatches(coffre, vault: vault, point: id, disks: [(disk.name, disk.content)],
                                     into: tmp.appendingPathComponent("restore"))
        }
    }
}
