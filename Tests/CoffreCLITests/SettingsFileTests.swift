import Foundation
import Testing

/// Where the settings come from: coffre.json of the data folder by default, or the file that
/// `--config` or `$COFFRE_CONFIG` names (the Debian package's /etc/coffre/coffre.json is
/// checked by scripts/package-test, which installs the package).
@Suite("settings file", .serialized)
struct SettingsFileTests {
    struct Report: Decodable {
        var checks: [Check]
        struct Check: Decodable { var name: String; var status: String; var detail: String }
    }

    /// Settings with a fabric only they name, so that a command shows which file it read.
    func writeSettings(_ file: URL, fabric: URL, extra: String = "") throws {
        try Data("""
            {"fabrics": [{"name": "elsewhere", "path": "\(fabric.path)"}]\(extra)}
            """.utf8).write(to: file)
    }

    @Test("--config and $COFFRE_CONFIG name the settings file; the data folder gets no coffre.json of its own")
    func namedSettings() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            let data = tmp.appendingPathComponent("data")
            let fabric = tmp.appendingPathComponent("fabric")
            let settings = tmp.appendingPathComponent("settings.json")
            try writeSettings(settings, fabric: fabric)
            for (args, env) in [(["--config", settings.path], [String: String]()), ([], ["COFFRE_CONFIG": settings.path])] {
                let doctor = try coffre.run(["doctor", "--data", data.path, "--json"] + args, env: env)
                let report = try decodeJSON(Report.self, doctor.stdout, context: doctor)
                let config = try #require(report.checks.first { $0.name == "config" })
                #expect(config.status == "ok" && config.detail.contains(settings.path), "\(config)")
                #expect(report.checks.contains { $0.name == "fabric elsewhere" }, "\(report.checks.map(\.name))")
                #expect(!report.checks.contains { $0.name == "fabric local" }, "the default fabric is not used")
            }
            try coffre.ok(["discover", "--data", data.path, "--config", settings.path])
            #expect(FileManager.default.fileExists(atPath: fabric.path), "the named settings' fabric folder is made")
            #expect(!FileManager.default.fileExists(atPath: data.appendingPathComponent("coffre.json").path))
        }
    }

    @Test("a named settings file that does not exist is refused with InvalidConfiguration, and nothing is created")
    func missingSettings() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            let data = tmp.appendingPathComponent("data")
            let missing = tmp.appendingPathComponent("nope.json")
            let result = try coffre.run(["vm", "list", "--data", data.path, "--config", missing.path])
            #expect(!result.succeeded)
            #expect(result.stderr.contains("[InvalidConfiguration]") && result.stderr.contains("\(missing.path) does not exist"),
                    "\(result)")
            #expect(!FileManager.default.fileExists(atPath: missing.path))
            let doctor = try coffre.run(["doctor", "--data", data.path, "--json"], env: ["COFFRE_CONFIG": missing.path])
            #expect(doctor.status == 1, "\(doctor)")
            let report = try decodeJSON(Report.self, doctor.stdout, context: doctor)
            let config = try #require(report.checks.first { $0.name == "config" })
            #expect(config.status == "failed" && config.detail.contains("does not exist"), "\(config)")
        }
    }

    @Test("coffre serve listens where the settings' host and port say when the command line does not")
    func listenFromSettings() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            let data = tmp.appendingPathComponent("data")
            let settings = tmp.appendingPathComponent("settings.json")
            // Port 0 (any free port) instead of the default 8080 shows that the file was read.
            try writeSettings(settings, fabric: tmp.appendingPathComponent("fabric"), extra: #", "host": "127.0.0.1", "port": 0"#)
            let server = try ServerProcess(coffre, data: data, arguments: ["--config", settings.path], anyPort: false)
            #expect(!server.url.hasSuffix(":8080"), "\(server.url)")
            try coffre.ok(["discover"], env: server.adminEnvironment)
            #expect(server.stop() == 0)
        }
    }
}
