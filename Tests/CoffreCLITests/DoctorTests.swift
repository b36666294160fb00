import CoffreTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `coffre doctor`: a healthy installation passes, and each check is made to fail once on
/// purpose (a key file other users may read, a full file system, libvirt out of reach, a clock
/// two hours off PostgreSQL's) and says what to do.
@Suite("coffre doctor", .serialized)
struct DoctorTests {
    struct Report: Decodable {
        var checks: [Check]
        var healthy: Bool
        struct Check: Decodable {
            var name: String
            var status: String
            var detail: String
            var advice: String?
        }

        func check(_ name: String) -> Check? { checks.first { $0.name == name } }
    }

    func doctor(_ coffre: Coffre, _ data: URL, env: [String: String] = [:]) throws -> (RunResult, Report) {
        let result = try coffre.run(["doctor", "--data", data.path, "--json"], env: env)
        #expect(!result.signaled && (result.status == 0 || result.status == 1), "\(result)")
        let report = try decodeJSON(Report.self, result.stdout, context: result)
        #expect((result.status == 0) == report.healthy, "exit status \(result.status), healthy \(report.healthy)")
        return (result, report)
    }

    @Test("a fresh installation with an encrypted vault passes; its key file made readable by others fails, with chmod 600 as advice")
    func keyFileMode() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            let data = tmp.appendingPathComponent("data")
            let key = tmp.appendingPathComponent("vault.key")
            let env = ["COFFRE_ENCRYPTION_KEY_FILE": key.path]
            try coffre.ok(["vm", "list", "--data", data.path], env: env)

            let (_, healthy) = try doctor(coffre, data, env: env)
            #expect(healthy.healthy, "\(healthy.checks.filter { $0.status == "failed" })")
            for name in ["config", "vault", "space", "key", "catalog", "fabric local"] {
                #expect(healthy.check(name)?.status == "ok", "\(name): \(String(describing: healthy.check(name)))")
            }
            #expect(healthy.check("key")?.detail.contains("mode 600") == true)
            #expect(healthy.check("vault")?.detail.contains("probe object written, read back and removed") == true)
            #expect(directoryEntries(data.appendingPathComponent("vault")).sorted() == ["coffre-vault.json", "tmp"], "the probe is removed")

            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: key.path)
            let (result, report) = try doctor(coffre, data, env: env)
            #expect(result.status == 1 && !report.healthy)
            let check = try #require(report.check("key"))
            #expect(check.status == "failed" && check.detail.contains("mode 644"), "\(check)")
            #expect(check.advice == "chmod 600 \(key.path) (and keep a copy of it away from the vault)")
            // The other checks still ran.
            #expect(report.check("catalog")?.status == "ok" && report.check("vault")?.status == "ok")

            // The text form: one line per check, the advice under it.
            let text = try coffre.run(["doctor", "--data", data.path], env: env)
            #expect(text.status == 1)
            #expect(text.stdout.contains("FAILED  key      \(key.path) has mode 644"), "\(text.stdout)")
            #expect(text.stdout.contains("        → chmod 600 \(key.path)"), "\(text.stdout)")
        }
    }

    @Test("a full file system (a small loop-mounted ext4 under the data folder): space fails, with what to do")
    func fullFileSystem() throws {
        try #require(getuid() == 0, "mounting a loop device needs root")
        let coffre = try Coffre()
        try withTempDir { tmp in
            let image = tmp.appendingPathComponent("fs.img").path
            let mountPoint = try makeDir(tmp.appendingPathComponent("mnt")).path
            func run(_ tool: String, _ arguments: [String]) throws -> RunResult {
                try runProcess(URL(fileURLWithPath: tool), arguments)
            }
            #expect(try run("/usr/bin/truncate", ["-s", "512M", image]).succeeded)
            #expect(try run("/sbin/mkfs.ext4", ["-q", "-F", "-m", "0", image]).succeeded)
            let mounted = try run("/bin/mount", ["-o", "loop", image, mountPoint])
            try #require(mounted.succeeded, "\(mounted)")
            defer { _ = try? run("/bin/umount", ["-l", mountPoint]) }
            let data = URL(fileURLWithPath: mountPoint).appendingPathComponent("data")
            try coffre.ok(["vm", "list", "--data", data.path])
            // Some 480 MiB free: above the minimum, below the comfortable 5 GiB.
            let short = try #require(try doctor(coffre, data).1.check("space"))
            #expect(short.status == "warning" && short.advice?.contains("more room") == true, "\(short)")

            // Fill it: one large allocation, then whatever blocks are left.
            _ = try run("/usr/bin/fallocate", ["-l", "470M", mountPoint + "/fill"])
            _ = try run("/bin/sh", ["-c", "cat /dev/zero > \"$0\"", mountPoint + "/fill-rest"])
            let (result, report) = try doctor(coffre, data)
            #expect(result.status == 1)
            let space = try #require(report.check("space"))
            #expect(space.status == "failed" && space.detail.contains(data.path + "/vault: "), "\(space)")
            #expect(space.advice?.contains("coffre vault gc") == true, "\(space)")
        }
    }

    @Test("libvirt out of reach: the fabric's check fails and names the host")
    func libvirtUnreachable() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            let data = try makeDir(tmp.appendingPathComponent("data"))
            let uri = "qemu+unix:///system?socket=/nonexistent/coffre-doctor-libvirt-sock"
            try Data(#"{"libvirtFabrics": [{"name": "kvm", "uri": "\#(uri)"}]}"#.utf8)
                .write(to: data.appendingPathComponent("coffre.json"))
            let (result, report) = try doctor(coffre, data)
            #expect(result.status == 1)
            let fabric = try #require(report.check("fabric kvm"))
            #expect(fabric.status == "failed", "\(fabric)")
            #expect(fabric.detail.contains("discovery: FabricUnreachable") || fabric.detail.contains("libvirt"), "\(fabric)")
            #expect(fabric.advice?.isEmpty == false, "\(fabric)")
            // The local fabric's folder is made by the first command: not there yet, a warning.
            #expect(report.check("fabric local")?.status == "warning")
        }
    }

    @Test("a clock two hours off PostgreSQL's fails the clock check; in step it does not",
          .enabled(if: PostgresTestServer.live, "needs scripts/pg-harness up"))
    func skewedClock() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            try CatalogKind.postgres.withCatalog { catalog in
                let data = tmp.appendingPathComponent("data")
                try coffre.ok(["vm", "list", "--data", data.path], env: catalog)

                let inStep = try #require(try doctor(coffre, data, env: catalog).1.check("clock"))
                #expect(inStep.status != "failed" && inStep.detail.contains("from PostgreSQL's clock"), "\(inStep)")

                let behind = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-7200))
                let (result, report) = try doctor(coffre, data, env: catalog.merging(["COFFRE_NOW": behind]) { $1 })
                #expect(result.status == 1)
                let clock = try #require(report.check("clock"))
                #expect(clock.status == "failed" && clock.detail.contains("-7"), "\(clock)")
                #expect(clock.advice?.contains("NTP") == true)
            }
        }
    }
}
