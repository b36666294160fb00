import CoffreTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The control plane through the `coffre` binary on its embedded defaults: a data folder with
/// the SQLite catalog, the vault and a local fabric whose guest channel runs `coffre-agent`.
@Suite("CLI control plane", .serialized)
struct ControlPlaneTests {
    /// Writes a local-fabric VM: vm.json and a disk with `data` at offset 0.
    func makeVM(_ data: URL, name: String, cloudService: String = "prod", size: Int, content: Data) throws -> URL {
        let folder = data.appendingPathComponent("fabric/\(cloudService)/\(name)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let disk = folder.appendingPathComponent("os.img")
        _ = FileManager.default.createFile(atPath: disk.path, contents: nil)
        let handle = try FileHandle(forWritingTo: disk)
        try handle.write(contentsOf: content)
        try handle.truncate(atOffset: UInt64(size))
        try handle.close()
        let json: [String: Any] = ["name": name, "cloudService": cloudService, "region": "local", "powerState": "running",
                                   "agentVersion": "2.0", "disks": ["os.img"]]
        try JSONSerialization.data(withJSONObject: json).write(to: folder.appendingPathComponent("vm.json"))
        return disk
    }

    struct JobInfo: Decodable {
        var id: String
        var type: String
        var status: String
        var details: [String: String]
        var error: ErrorInfo?
        var steps: [Step]
        struct ErrorInfo: Decodable { var code: String; var message: String; var workaround: String? }
        struct Step: Decodable { var name: String; var status: String }
    }

    /// `coffre points VM --json`: the API's `{item, points}`.
    struct Points: Decodable {
        var points: [Row]
        struct Row: Decodable {
            var point: Point
            var blocksAdded: Int
        }
        struct Point: Decodable { var id: String; var consistency: String; var type: String }
    }

    /// A 96 MiB VM `big`, registered and protected by a nightly policy, on the morning of 2026-11-23.
    func protectBigVM(_ coffre: Coffre, data: URL, seed: UInt64, catalogEnv: [String: String] = [:]) throws -> [String: String] {
        var rng = SplitMix64(seed: seed)
        _ = try makeVM(data, name: "big", size: 96 * MiB, content: rng.bytes(96 * MiB))
        let morning = ["COFFRE_DATA": data.path, "COFFRE_NOW": "2026-11-23T08:00:00Z"].merging(catalogEnv) { $1 }
        try coffre.ok(["discover"], env: morning)
        try coffre.ok(["register", "big"], env: morning)
        try coffre.ok(["policy", "create", "nightly", "--daily", "22:00", "--keep-days", "7"], env: morning)
        try coffre.ok(["protect", "big", "--policy", "nightly"], env: morning)
        return morning
    }

    /// Starts `coffre ARGS` in the background, then waits until a backup job is copying data.
    func startUntilTransfer(_ coffre: Coffre, _ arguments: [String], env: [String: String]) throws -> (Process, JobInfo) {
        let process = Process()
        process.executableURL = coffre.binary
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in env { environment[key] = value }
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var running: JobInfo?
        for _ in 0..<600 where running == nil {
            let jobs = try decodeJSON([JobInfo].self, try coffre.ok(["jobs", "--type", "backup", "--json"], env: env).stdout)
            running = jobs.first { job in job.status == "InProgress" && job.steps.contains { $0.name == "Transfer data" } }
            if running == nil { usleep(20_000) }
        }
        guard let running else {
            process.terminate()
            process.waitUntilExit()
            throw HarnessError("the backup never reached its transfer step")
        }
        return (process, running)
    }

    /// Nothing of an unfinished backup is visible: no point listed, no snapshot, no point data.
    func expectNothingLeft(_ coffre: Coffre, data: URL, env: [String: String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try decodeJSON(Points.self, try coffre.ok(["points", "big", "--json"], env: env).stdout).points.isEmpty,
                sourceLocation: sourceLocation)
        #expect(directoryEntries(data.appendingPathComponent("fabric/.coffre-snapshots")).isEmpty, sourceLocation: sourceLocation)
        #expect(directoryEntries(data.appendingPathComponent("vault/points")).filter { !$0.hasPrefix(".") }.isEmpty,
                sourceLocation: sourceLocation)
    }

    @Test("discover → register → protect → backup → restore, from the command line", arguments: CatalogKind.available)
    func flow(_ catalog: CatalogKind) throws {
        let coffre = try Coffre()
        try withTempDir { tmp in try catalog.withCatalog { catalogEnv in
            let data = tmp.appendingPathComponent("data")
            var rng = SplitMix64(seed: 42)
            let content = rng.bytes(3 * MiB)
            let disk = try makeVM(data, name: "web01", size: 8 * MiB, content: content)
            let env = ["COFFRE_DATA": data.path].merging(catalogEnv) { $1 }
            let discovery = try coffre.ok(["discover"], env: env)
            #expect(discovery.stdout.contains("Discovery") && discovery.stdout.contains("Succeeded"))
            let listing = try coffre.ok(["vm", "list", "--unregistered"], env: env)
            #expect(listing.stdout.contains("prod/web01"))
            try coffre.ok(["register", "web01"], env: env)
            #expect(try coffre.ok(["vm", "list", "--unregistered"], env: env).stdout.contains("prod/web01") == false)
            try coffre.ok(["policy", "create", "nightly", "--daily", "22:00", "--time-zone", "Europe/Paris", "--keep-days", "30"], env: env)
            let bad = try coffre.run(["policy", "create", "bad", "--daily", "25:00", "--keep-days", "30"], env: env)
            expectOneLineError(bad, "InvalidSchedule")
            #expect(bad.stderr.contains("[InvalidSchedule]"))
            try coffre.ok(["protect", "prod/web01", "--policy", "nightly"], env: env)
            #expect(try coffre.ok(["dashboard"], env: env).stdout.contains("Protected VMs: 1 (1 pending initial backup)"))

            let backup = try decodeJSON(JobInfo.self, try coffre.ok(["backup", "web01", "--json"], env: env).stdout)
            #expect(backup.status == "Succeeded")
            let point = try #require(backup.details["point"])
            let rows = try decodeJSON(Points.self, try coffre.ok(["points", "web01", "--json"], env: env).stdout).points
            #expect(rows.map(\.point.id) == [point])
            #expect(rows.first?.point.type == "onDemand")
            #expect(rows.first?.blocksAdded ?? 0 > 0)

            let target = tmp.appendingPathComponent("restored")
            try coffre.ok(["restore", "web01", "--point", point, "--to", target.path], env: env)
            #expect(try readFile(target.appendingPathComponent("os.img")) == readFile(disk))
            let jobs = try decodeJSON([JobInfo].self, try coffre.ok(["jobs", "--json"], env: env).stdout)
            #expect(jobs.map(\.type) == ["Restore", "Backup", "ConfigureProtection", "Register", "Discovery"])
            let qcow2 = tmp.appendingPathComponent("restored-qcow2")
            try coffre.ok(["restore", "web01", "--point", point, "--to", qcow2.path, "--format", "qcow2"], env: env)
            #expect(try readFile(qcow2.appendingPathComponent("os.qcow2")).prefix(4) == Data([0x51, 0x46, 0x49, 0xFB]))
            expectOneLineError(try coffre.run(["restore", "web01", "--point", point, "--as-new-vm", "w2", "--format", "qcow2"], env: env),
                               "InvalidOption")
            expectOneLineError(try coffre.run(["restore", "web01", "--point", point, "--to", qcow2.path, "--format", "vmdk"], env: env),
                               "InvalidDiskFormat")
            let shown = try coffre.ok(["job", "show", backup.id], env: env).stdout
            #expect(shown.contains("Transfer data: succeeded"))
            // The real coffre-agent answered in the guest folder; it had nothing to freeze there.
            #expect(shown.contains("Prepare guest: succeeded") && shown.contains("Release guest: succeeded"))
            #expect(rows.first?.point.consistency == "crashConsistent")
            let missing = try coffre.run(["job", "cancel", "job-nope"], env: env)
            expectOneLineError(missing, "JobNotFound")
            #expect(missing.stderr.contains("[JobNotFound]"))
            #expect(FileManager.default.fileExists(atPath: data.appendingPathComponent("catalog.sqlite").path) == (catalog == .sqlite),
                    "the catalog is where it was asked to be")
        } }
    }

    @Test("catalog migrate: a populated SQLite catalog moves into PostgreSQL; the same commands answer the same there",
          .enabled(if: PostgresTestServer.live, "needs scripts/pg-harness up"))
    func migrateToPostgres() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in try CatalogKind.postgres.withCatalog { postgres in
            let data = tmp.appendingPathComponent("data")
            var rng = SplitMix64(seed: 11)
            let disk = try makeVM(data, name: "web01", size: 8 * MiB, content: rng.bytes(2 * MiB))
            _ = try makeVM(data, name: "db01", size: 4 * MiB, content: rng.bytes(MiB))
            let sqlite = ["COFFRE_DATA": data.path]
            try coffre.ok(["discover"], env: sqlite)
            try coffre.ok(["register", "web01", "db01"], env: sqlite)
            try coffre.ok(["policy", "create", "nightly", "--daily", "22:00", "--keep-days", "30"], env: sqlite)
            try coffre.ok(["protect", "web01", "db01", "--policy", "nightly"], env: sqlite)
            let first = try decodeJSON(JobInfo.self, try coffre.ok(["backup", "web01", "--json"], env: sqlite).stdout)
            _ = try coffre.ok(["backup", "web01", "--json"], env: sqlite)
            _ = try coffre.ok(["backup", "db01", "--json"], env: sqlite)
            let before = try coffre.ok(["points", "web01", "--json"], env: sqlite).stdout
            let jobsBefore = try decodeJSON([JobInfo].self, try coffre.ok(["jobs", "--json"], env: sqlite).stdout)

            let url = try #require(postgres["COFFRE_CATALOG"])
            let migrated = try coffre.ok(["catalog", "migrate", "--to", url, "--json"], env: sqlite)
            let report = try #require(try jsonObject(migrated.stdout) as? [String: Any])
            let copied = try #require(report["copied"] as? [String: Int])
            #expect(copied["VMs"] == 2 && copied["policies"] == 1 && copied["protected items"] == 2)
            #expect(copied["recovery points"] == 3 && copied["jobs"] == jobsBefore.count)
            #expect(try coffre.ok(["points", "web01", "--json"], env: sqlite).stdout == before, "the source is left as it was")
            #expect(try decodeJSON([JobInfo].self, try coffre.ok(["jobs", "--json"], env: sqlite).stdout).map(\.id) == jobsBefore.map(\.id))

            // The same commands on PostgreSQL: same points, same jobs, a restore of a migrated point.
            let onPostgres = sqlite.merging(postgres) { $1 }
            #expect(try coffre.ok(["points", "web01", "--json"], env: onPostgres).stdout == before)
            let jobsAfter = try decodeJSON([JobInfo].self, try coffre.ok(["jobs", "--json"], env: onPostgres).stdout)
            #expect(jobsAfter.map(\.id) == jobsBefore.map(\.id) && jobsAfter.map(\.status) == jobsBefore.map(\.status))
            let point = try #require(first.details["point"])
            let target = tmp.appendingPathComponent("restored")
            try coffre.ok(["restore", "web01", "--point", point, "--to", target.path], env: onPostgres)
            #expect(try readFile(target.appendingPathComponent("os.img")) == readFile(disk))
            let backup = try decodeJSON(JobInfo.self, try coffre.ok(["backup", "db01", "--json"], env: onPostgres).stdout)
            #expect(backup.status == "Succeeded")

            // Into a database that is not empty: refused, nothing copied.
            let again = try coffre.run(["catalog", "migrate", "--to", url], env: sqlite)
            expectOneLineError(again, "CatalogNotEmpty")
            #expect(try decodeJSON([JobInfo].self, try coffre.ok(["jobs", "--json"], env: onPostgres).stdout).count == jobsAfter.count + 2,
                    "the jobs so far and the restore and backup run on PostgreSQL, nothing more")
            // Not a PostgreSQL URL; no catalog to migrate.
            expectOneLineError(try coffre.run(["catalog", "migrate", "--to", "/tmp/x.sqlite"], env: sqlite), "InvalidArgument")
            expectOneLineError(try coffre.run(["catalog", "migrate", "--to", url], env: ["COFFRE_DATA": tmp.appendingPathComponent("none").path]),
                               "CatalogUnreadable")
        } }
    }

    @Test("kill -9 during a backup: on restart the job is failed, no point shows, the item is free",
          arguments: CatalogKind.available)
    func restartAfterKill(_ catalog: CatalogKind) throws {
        let coffre = try Coffre()
        try withTempDir { tmp in try catalog.withCatalog { catalogEnv in
            let data = tmp.appendingPathComponent("data")
            let morning = try protectBigVM(coffre, data: data, seed: 7, catalogEnv: catalogEnv)
            // Start a backup in the background and kill it while it copies data.
            let (process, job) = try startUntilTransfer(coffre, ["backup", "big", "--no-progress"], env: morning)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()

            // Any command recovers: the job is failed as interrupted.
            let after = try decodeJSON(JobInfo.self, try coffre.ok(["job", "show", job.id, "--json"], env: morning).stdout)
            #expect(after.status == "Failed")
            #expect(after.error?.code == "JobInterrupted")
            try expectNothingLeft(coffre, data: data, env: morning)

            // The item is not stuck busy: the scheduled backup of the evening runs and succeeds.
            let evening = ["COFFRE_DATA": data.path, "COFFRE_NOW": "2026-11-23T22:05:00Z"].merging(catalogEnv) { $1 }
            let pass = try coffre.ok(["scheduler", "--once"], env: evening, timeout: 300)
            #expect(pass.stdout.contains("Backup prod/big Succeeded"))
            let rows = try decodeJSON(Points.self, try coffre.ok(["points", "big", "--json"], env: evening).stdout).points
            #expect(rows.map(\.point.type) == ["scheduled"])
        } }
    }

    @Test("SIGTERM stops the scheduler cleanly: its running backup ends Cancelled and leaves no point")
    func gracefulStop() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            let data = tmp.appendingPathComponent("data")
            _ = try protectBigVM(coffre, data: data, seed: 9)
            // The evening's slot is due: the scheduler starts the backup at once.
            let evening = ["COFFRE_DATA": data.path, "COFFRE_NOW": "2026-11-23T22:05:00Z"]
            let (process, job) = try startUntilTransfer(coffre, ["scheduler"], env: evening)
            process.terminate()  // SIGTERM
            process.waitUntilExit()
            #expect(process.terminationReason == .exit && process.terminationStatus == 0)

            let after = try decodeJSON(JobInfo.self, try coffre.ok(["job", "show", job.id, "--json"], env: evening).stdout)
            #expect(after.status == "Cancelled")
            try expectNothingLeft(coffre, data: data, env: evening)
        }
    }
}

/// The catalogs the command-line tests run on: the embedded SQLite file, and a database of the
/// PostgreSQL of scripts/pg-harness (given as `COFFRE_CATALOG`) when it is up, always in CI.
enum CatalogKind: String, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    static var available: [CatalogKind] { PostgresTestServer.live ? [.sqlite, .postgres] : [.sqlite] }

    var testDescription: String { rawValue }

    /// Runs `body` with the environment that selects this catalog; a PostgreSQL database is
    /// made for it and dropped afterwards.
    func withCatalog(_ body: ([String: String]) throws -> Void) throws {
        guard self == .postgres else { return try body([:]) }
        let name = PostgresTestServer.newDatabaseName("cli")
        try psql("CREATE DATABASE \(name)")
        defer { _ = try? psql("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
        try body(["COFFRE_CATALOG": PostgresTestServer.url(database: name)])
    }

    func withCatalog(_ body: ([String: String]) async throws -> Void) async throws {
        guard self == .postgres else { return try await body([:]) }
        let name = PostgresTestServer.newDatabaseName("cli")
        try psql("CREATE DATABASE \(name)")
        defer { _ = try? psql("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
        try await body(["COFFRE_CATALOG": PostgresTestServer.url(database: name)])
    }
}

/// Runs `sql` (made of names the tests choose) with psql on the database of `url`, by default
/// the test server's own, and returns what it printed: tuples only, unaligned.
@discardableResult
func psql(_ sql: String, database url: String = PostgresTestServer.url) throws -> String {
    let result = try runProcess(URL(fileURLWithPath: "/usr/lib/postgresql/15/bin/psql"),
                                ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
    guard result.status == 0 else { throw HarnessError("psql failed: \(result.stderr)") }
    return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}
