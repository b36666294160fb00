import Foundation
import Testing

/// Issue 18, item 3: the vault plus its key is a complete disaster-recovery kit.
extension ControlPlaneTests {
    struct CopyListing: Decodable { var name: String; var size: Int }
    struct RestoreReport: Decodable {
        var copy: String
        var restored: [String: Int]
        var dropped: [String]
        var adopted: [String]
        var endedJobs: [String]
    }

    @Test("the catalog saved into an encrypted vault comes back after the catalog is deleted; every point lists and restores")
    func catalogRestoredFromTheVault() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            let data = tmp.appendingPathComponent("data")
            try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
            let env = ["COFFRE_DATA": data.path]
            let vaultFolder = data.appendingPathComponent("vault")
            try coffre.ok(["vault", "create", vaultFolder.path, "--encryption-key", tmp.appendingPathComponent("vault.key").path])
            var rng = SplitMix64(seed: 0xCA7A_1060)
            let alpha = try makeVM(data, name: "alpha", size: 4 * MiB, content: rng.bytes(600 * KiB))
            let beta = try makeVM(data, name: "beta", size: 2 * MiB, content: rng.bytes(300 * KiB))
            try coffre.ok(["discover"], env: env)
            try coffre.ok(["register", "alpha", "beta"], env: env)
            try coffre.ok(["policy", "create", "nightly", "--daily", "22:00", "--keep-days", "7"], env: env)
            try coffre.ok(["protect", "alpha", "beta", "--policy", "nightly"], env: env)

            var contents: [String: (vm: String, disk: Data)] = [:]
            func backup(_ vm: String, _ disk: URL) throws -> String {
                let job = try decodeJSON(JobInfo.self, try coffre.ok(["backup", vm, "--json"], env: env).stdout)
                let id = try #require(job.details["point"], "\(job)")
                contents[id] = (vm, try Data(contentsOf: disk))
                return id
            }
            func copies() throws -> [CopyListing] {
                try decodeJSON([CopyListing].self, try coffre.ok(["catalog", "copies", "--json"], env: env).stdout)
            }
            func listed(_ vm: String) throws -> [String] {
                try decodeJSON(Points.self, try coffre.ok(["points", vm, "--json"], env: env).stdout).points.map(\.point.id)
            }
            func loseTheCatalog() throws {
                for suffix in ["", "-wal", "-shm"] {
                    try? FileManager.default.removeItem(at: data.appendingPathComponent("catalog.sqlite" + suffix))
                }
            }

            _ = try backup("alpha", alpha)
            _ = try backup("beta", beta)
            let beforeLast = try #require(try copies().first, "a backup wrote no catalog copy").name
            let alphaHandle = try FileHandle(forWritingTo: alpha)
            try alphaHandle.seek(toOffset: UInt64(64 * KiB))
            try alphaHandle.write(contentsOf: rng.bytes(100 * KiB))
            try alphaHandle.close()
            let last = try backup("alpha", alpha)
            let newest = try #require(try copies().first).name
            #expect(newest != beforeLast, "the last backup wrote a copy")
            let points = ["alpha": try listed("alpha"), "beta": try listed("beta")]
            #expect(points["alpha"]?.count == 2 && points["beta"]?.count == 1)

            // Encrypted like the rest of the vault.
            for name in try FileManager.default.contentsOfDirectory(atPath: vaultFolder.appendingPathComponent("catalog").path) {
                let sealed = try Data(contentsOf: vaultFolder.appendingPathComponent("catalog/\(name)"))
                #expect(sealed.range(of: Data("alpha".utf8)) == nil && sealed.range(of: Data("nightly".utf8)) == nil,
                        "catalog copy \(name) holds names in clear")
            }

            // The catalog is lost; the newest copy brings every point back.
            try loseTheCatalog()
            let restored = try decodeJSON(RestoreReport.self,
                                          try coffre.ok(["catalog", "restore", "--from-vault", "--json"], env: env).stdout)
            #expect(restored.copy == newest)
            #expect(restored.restored["recovery points"] == 3 && restored.restored["protected items"] == 2)
            #expect(restored.dropped.isEmpty && restored.adopted.isEmpty && restored.endedJobs.isEmpty)
            #expect(try listed("alpha") == points["alpha"] && (try listed("beta")) == points["beta"])
            for (point, expected) in contents {
                let target = tmp.appendingPathComponent("restore-\(point)")
                try coffre.ok(["restore", expected.vm, "--point", point, "--to", target.path], env: env)
                #expect(try Data(contentsOf: target.appendingPathComponent("os.img")) == expected.disk, "\(point)")
            }
            // A restore writes only into an empty catalog.
            expectOneLineError(try coffre.run(["catalog", "restore", "--from-vault"], env: env), "CatalogNotEmpty")

            // From a copy older than the last backup: that point is adopted, and a scheduler
            // pass (retention and the sweep for uncommitted points) keeps it.
            try loseTheCatalog()
            let older = try decodeJSON(RestoreReport.self, try coffre.ok(
                ["catalog", "restore", "--from-vault", "--copy", beforeLast, "--json"], env: env).stdout)
            #expect(older.adopted == [last])
            try coffre.ok(["scheduler", "--once"], env: env)
            #expect(try listed("alpha") == points["alpha"])
            let target = tmp.appendingPathComponent("restore-adopted")
            try coffre.ok(["restore", "alpha", "--point", last, "--to", target.path], env: env)
            #expect(try Data(contentsOf: target.appendingPathComponent("os.img")) == contents[last]?.disk)

            expectOneLineError(try coffre.run(["catalog", "restore", "--from-vault", "--copy", "20200101T000000.000-00000000"], env: env),
                               "CatalogCopyNotFound")
        }
    }
}
