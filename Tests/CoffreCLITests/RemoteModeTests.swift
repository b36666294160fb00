import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `coffre serve` on a free port, started and stopped by a test. With `COFFRE_TEST_TLS=1` in
/// the tests' environment (CI runs the live-server suites a second time so), or `tls: true`, it
/// serves HTTPS with its self-signed certificate, and the remote-mode environment pins it.
final class ServerProcess {
    let process = Process()
    let url: String
    let data: URL
    /// The SHA-256 fingerprint the server printed (HTTPS), else nil.
    let fingerprint: String?
    private let output = DataBox()

    static var tlsByDefault: Bool { ProcessInfo.processInfo.environment["COFFRE_TEST_TLS"] == "1" }

    /// Starts the server on `data` (with `environment` added to the test's) and waits for its
    /// "listens on" line.
    /// - Parameter anyPort: `--port 0`; false: the port comes from `arguments` or the settings.
    init(_ coffre: Coffre, data: URL, environment: [String: String] = [:], arguments: [String] = [],
         anyPort: Bool = true, tls: Bool = ServerProcess.tlsByDefault) throws {
        self.data = data
        process.executableURL = coffre.binary
        process.arguments = ["serve", "--data", data.path] + (anyPort ? ["--port", "0"] : [])
            + (tls ? ["--tls-self-signed"] : []) + arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        let box = output
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let chunk = handle.availableData
            if !chunk.isEmpty { box.set(box.data + chunk) }
        }
        try process.run()
        var found: String?
        var text = ""
        for _ in 0..<600 where found == nil && process.isRunning {
            text = String(decoding: box.data, as: UTF8.self)
            if let range = text.range(of: #"https?://[0-9.]+:[0-9]+"#, options: .regularExpression),
               text.contains("listens on") {
                found = String(text[range])
            } else {
                usleep(50_000)
            }
        }
        guard let found else {
            if process.isRunning { process.terminate() }
            throw HarnessError("coffre serve did not start: \(String(decoding: box.data, as: UTF8.self))")
        }
        url = found
        fingerprint = text.range(of: #"fingerprint [0-9A-F:]{95}"#, options: .regularExpression)
            .map { String(text[$0].dropFirst("fingerprint ".count)) }
    }

    /// What curl needs to trust the server: its self-signed certificate when it serves HTTPS.
    var curlTrust: [String] {
        fingerprint == nil ? [] : ["--cacert", data.appendingPathComponent("tls/coffre.crt").path]
    }

    /// The environment of a remote-mode command with the server's first admin token.
    var adminEnvironment: [String: String] {
        ["COFFRE_SERVER": url, "COFFRE_TOKEN_FILE": data.appendingPathComponent("admin-token").path]
            .merging(trustEnvironment) { $1 }
    }

    /// The pin of the server's certificate when it serves HTTPS.
    var trustEnvironment: [String: String] { fingerprint.map { ["COFFRE_FINGERPRINT": $0] } ?? [:] }

    /// SIGTERM, then the exit status (0 when the server stopped gracefully).
    func stop() -> Int32 {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { process.interrupt(); process.terminate() }
    }
}

/// The CLI's remote mode: the same commands against a running `coffre serve`.
@Suite("CLI remote mode", .serialized)
struct RemoteModeTests {
    struct Job: Decodable, Equatable {
        var id: String
        var type: String
        var status: String
        var details: [String: String]
    }

    struct Board: Decodable { var protectedVMs: Int; var pendingInitialBackup: Int }

    @Test("discover → register → protect → backup (progress bar on a terminal) → restore, over HTTP (HTTPS with COFFRE_TEST_TLS=1)")
    func remoteFlow() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            let data = tmp.appendingPathComponent("data")
            var rng = SplitMix64(seed: 5)
            let disk = try ControlPlaneTests().makeVM(data, name: "web01", size: 24 * MiB, content: rng.bytes(6 * MiB))
            let server = try ServerProcess(coffre, data: data)
            let env = server.adminEnvironment

            #expect(try coffre.ok(["discover"], env: env).stdout.contains("Discovery Succeeded"))
            #expect(try coffre.ok(["vm", "list", "--unregistered"], env: env).stdout.contains("prod/web01"))
            try coffre.ok(["register", "prod/web01"], env: env)
            try coffre.ok(["policy", "create", "nightly", "--daily", "22:00", "--keep-days", "30"], env: env)
            try coffre.ok(["protect", "web01", "--policy", "nightly"], env: env)
            let board = try decodeJSON(Board.self, try coffre.ok(["dashboard", "--json"], env: env).stdout)
            #expect(board.protectedVMs == 1 && board.pendingInitialBackup == 1)

            // On a terminal (a pty from `script`), the backup draws its progress bar while it polls the job.
            let onTerminal = try runProcess(
                URL(fileURLWithPath: "/usr/bin/script"), ["-qec", "\(coffre.binary.path) backup web01", "/dev/null"],
                environment: env)
            #expect(onTerminal.succeeded, "\(onTerminal)")
            #expect(onTerminal.stdout.contains("backup [##############################] 100%"), "\(onTerminal.stdout)")
            #expect(onTerminal.stdout.contains("Backup prod/web01 Succeeded"))

            let points = try decodeJSON(ControlPlaneTests.Points.self, try coffre.ok(["points", "web01", "--json"], env: env).stdout)
            let point = try #require(points.points.first?.point.id)
            #expect(points.points.count == 1 && points.points[0].blocksAdded > 0)

            // A relative folder lands in the server's restore root.
            let restored = try decodeJSON(Job.self, try coffre.ok(["restore", "web01", "--point", point, "--to", "r1", "--json"], env: env).stdout)
            #expect(restored.status == "Succeeded")
            #expect(try readFile(data.appendingPathComponent("restores/r1/os.img")) == readFile(disk))

            let backups = try decodeJSON([Job].self, try coffre.ok(["jobs", "--type", "backup", "--since", "1h", "--json"], env: env).stdout)
            #expect(backups.map(\.status) == ["Succeeded"])
            #expect(try coffre.ok(["job", "show", backups[0].id], env: env).stdout.contains("Transfer data: succeeded"))

            // The same data read in-process prints the same JSON.
            let remoteJobs = try coffre.ok(["jobs", "--json"], env: env).stdout
            let localJobs = try coffre.ok(["jobs", "--json", "--data", data.path]).stdout
            #expect(remoteJobs == localJobs)
            #expect(try decodeJSON([Job].self, remoteJobs).map(\.type) == ["Restore", "Backup", "ConfigureProtection", "Register", "Discovery"])

            // Roles: a reader looks but cannot start a backup; an unknown token is refused.
            let reader = try coffre.ok(["token", "create", "ci-reader", "--role", "reader"], env: env).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let readerEnv = ["COFFRE_SERVER": server.url, "COFFRE_TOKEN": reader].merging(server.trustEnvironment) { $1 }
            try coffre.ok(["jobs"], env: readerEnv)
            let refused = try coffre.run(["backup", "web01"], env: readerEnv)
            expectOneLineError(refused, "Forbidden")
            #expect(refused.stderr.contains("[Forbidden]"))
            let unknown = try coffre.run(["jobs"], env: ["COFFRE_SERVER": server.url, "COFFRE_TOKEN": "cof_nope"].merging(server.trustEnvironment) { $1 })
            expectOneLineError(unknown, "Unauthenticated")
            #expect(unknown.stderr.contains("[Unauthenticated]: This server does not know the token sent"))
            // Errors of the engine come back with their code, message and workaround.
            let missing = try coffre.run(["points", "nosuchvm"], env: env)
            expectOneLineError(missing, "VMNotFound")
            #expect(missing.stderr.contains("[VMNotFound]") && missing.stderr.contains("Workaround"))
            // Nothing was started by the refused requests.
            #expect(try decodeJSON([Job].self, try coffre.ok(["jobs", "--json"], env: env).stdout).count == 5)

            #expect(server.stop() == 0)
        }
    }

    @Test("remote mode: a clear one-line error for a missing token, an unreachable server, a bad URL, --data with --server")
    func remoteErrors() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            let noToken = try coffre.run(["jobs", "--server", "http://127.0.0.1:9"], env: ["COFFRE_TOKEN": "", "COFFRE_TOKEN_FILE": ""])
            expectOneLineError(noToken, "TokenMissing")
            #expect(noToken.stderr.contains("[TokenMissing]"))
            let unreachable = try coffre.run(["jobs", "--server", "http://127.0.0.1:9", "--token", "x"])
            expectOneLineError(unreachable, "ServerUnreachable")
            #expect(unreachable.stderr.contains("[ServerUnreachable]"))
            let badURL = try coffre.run(["jobs", "--server", "ftp://example", "--token", "x"])
            expectOneLineError(badURL, "InvalidServer")
            let both = try coffre.run(["jobs", "--server", "http://127.0.0.1:9", "--token", "x", "--data", tmp.path])
            expectOneLineError(both, "InvalidOption")
            let tokensLocally = try coffre.run(["token", "list", "--data", tmp.path], env: ["COFFRE_SERVER": ""])
            expectOneLineError(tokensLocally, "ServerRequired")
        }
    }
}
