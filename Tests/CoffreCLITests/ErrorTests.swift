import Foundation
import Testing

@Suite("CLI errors")
struct ErrorTests {
    enum Case: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case restoreUnknownPoint
        case restoreMalformedPoint
        case expireUnknownPoint
        case backupMissingDisk
        case notAVaultPoints
        case notAVaultBackup
        case createOnExistingVault
        case invalidBlockSize
        case itemNameWithSlash
        var testDescription: String { rawValue }
    }

    /// A different id of the same shape: the last alphanumeric character changed.
    static func unknownID(like id: String) -> String {
        var chars = Array(id)
        if let i = chars.lastIndex(where: { $0.isLetter || $0.isNumber }) {
            let c = chars[i]
            chars[i] = c.isNumber ? (c == "7" ? "3" : "7") : (c == "a" || c == "A" ? "b" : "a")
        } else {
            chars.append("0")
        }
        return String(chars)
    }

    @Test("failing commands print one error line and leave the vault unchanged", arguments: Case.allCases)
    func failure(_ c: Case) throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            var rng = SplitMix64(seed: 0xE440_0005)
            let vault = tmp.appendingPathComponent("vault")
            try coffre.createVault(vault, blockSize: "16KiB")
            let src = try makeDir(tmp.appendingPathComponent("src"))
            var disk = try Disk(create: src.appendingPathComponent("d.img"), size: 256 * KiB)
            try disk.write(rng.bytes(100 * KiB), at: 0)
            let id = try coffre.backup(vault, item: "vm", disks: [disk.url])

            let notVault = try makeDir(tmp.appendingPathComponent("plain"))
            try Data("hello".utf8).write(to: notVault.appendingPathComponent("readme.txt"))
            let target = try makeDir(tmp.appendingPathComponent("target"))

            // What must not change: the vault (and, where relevant, the other directory).
            var watched = vault
            var args: [String]
            switch c {
            case .restoreUnknownPoint:
                args = ["image", "restore", "--vault", vault.path, "--point", Self.unknownID(like: id),
                        "--to", target.path, "--no-progress"]
            case .restoreMalformedPoint:
                args = ["image", "restore", "--vault", vault.path, "--point", "no-such-point",
                        "--to", target.path, "--no-progress"]
            case .expireUnknownPoint:
                args = ["image", "expire", "--vault", vault.path, "--point", Self.unknownID(like: id)]
            case .backupMissingDisk:
                args = ["image", "backup", "--vault", vault.path, "--item", "vm", "--no-progress",
                        disk.url.path, src.appendingPathComponent("missing.img").path]
            case .notAVaultPoints:
                watched = notVault
                args = ["image", "points", "--vault", notVault.path, "--item", "vm", "--json"]
            case .notAVaultBackup:
                watched = notVault
                args = ["image", "backup", "--vault", notVault.path, "--item", "vm", "--no-progress", disk.url.path]
            case .createOnExistingVault:
                args = ["vault", "create", vault.path]
            case .invalidBlockSize:
                watched = tmp.appendingPathComponent("new-vault")
                args = ["vault", "create", watched.path, "--block-size", "5KiB"]
            case .itemNameWithSlash:
                args = ["image", "backup", "--vault", vault.path, "--item", "a/b", "--no-progress", disk.url.path]
            }
            let watchedBefore = treeListing(watched)
            let vaultBefore = treeListing(vault)
            let r = try coffre.run(args)
            expectOneLineError(r, c.rawValue)
            #expect(treeListing(watched) == watchedBefore, "\(c.rawValue) changed \(watched.lastPathComponent)")
            #expect(treeListing(vault) == vaultBefore, "\(c.rawValue) changed the vault")
            #expect(directoryEntries(target).isEmpty, "\(c.rawValue) wrote into the restore target")
            if c == .invalidBlockSize {
                #expect(!FileManager.default.fileExists(atPath: watched.path), "a refused create left \(watched.path)")
            }
            // The vault still works and still holds exactly the one point.
            #expect(try coffre.points(vault, item: "vm").map(\.id) == [id])
        }
    }
}
