import CoffreTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Three `coffre serve` nodes on one PostgreSQL catalog and one S3 vault, on an accelerated
/// clock (a day every 10 s): scheduled slots, kill -9 of the leader and of a node in the
/// middle of a backup.
@Suite("A cluster of nodes", .serialized)
struct ClusterTests {
    static let slotSeconds = 10.0
    static let dayFormatter: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
        return formatter
    }()

    struct BackupRow {
        var id: String
        var vm: String
        var slot: Date
        var status: String
        var errorCode: String
        var owner: String
    }

    /// Every scheduled Backup job of the catalog.
    static func scheduledBackups(_ url: String) throws -> [BackupRow] {
        try psql("""
            SELECT id, vm_name, doc::json->'details'->>'slot', status, coalesce(doc::json->'error'->>'code', ''), owner
            FROM jobs WHERE type = 'Backup' AND doc::json->'details'->>'trigger' = 'scheduled'
            """, database: url)
            .split(separator: "\n").map { line in
                let f = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
                return BackupRow(id: f[0], vm: f[1], slot: dayFormatter.date(from: f[2]) ?? .distantPast,
                                 status: f[3], errorCode: f[4], owner: f[5])
            }
    }

    @Test("30 VMs, three nodes, over 20 slots: every due slot gives exactly one backup, spread over the nodes; kill -9 of the leader and of a node mid-backup: another leads, its jobs end JobInterrupted within the lease, nothing of them is visible, and the VMs are backed up at their next slot",
          .enabled(if: PostgresTestServer.live && S3TestGateway.live, "needs scripts/pg-harness up and scripts/s3-harness up"))
    func scheduledSlotsOnThreeNodes() async throws {
        let coffre = try Coffre()
        let helper = NodeTests()
        try await withTempDir { tmp in try await CatalogKind.postgres.withCatalog { catalog in
            let url = catalog["COFFRE_CATALOG"]!
            let data = tmp.appendingPathComponent("data")
            try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
            try Data(#"{"maxConcurrentBackups": 4, "leaderLeaseSeconds": 4, "heartbeatSeconds": 1, "tickSeconds": 1}"#.utf8)
                .write(to: data.appendingPathComponent("coffre.json"))
            var rng = SplitMix64(seed: 30)
            let names = (0..<30).map { String(format: "vm%02d", $0) }
            for name in names { _ = try ControlPlaneTests().makeVM(data, name: name, size: 1 * MiB, content: rng.bytes(256 << 10)) }
            let vault = "s3://\(S3TestGateway.bucket)/\(S3TestGateway.newPrefix("cluster"))"
            let s3 = CLIStore.gatewayEnvironment
            try coffre.ok(["vault", "create", vault, "--create-bucket"], env: s3)
            // Every node's clock: a day every 10 s from 2026-12-01 12:00 UTC, counted from now.
            let clock = ["COFFRE_NOW": "2026-12-01T12:00:00Z", "COFFRE_CLOCK_SPEED": String(86_400 / Self.slotSeconds),
                         "COFFRE_CLOCK_FROM": ISO8601DateFormatter().string(from: Date())]
            let environment = catalog.merging(s3) { $1 }.merging(clock) { $1 }
            func startNode() throws -> ServerProcess {
                try ServerProcess(coffre, data: data, environment: environment, arguments: ["--vault", vault])
            }
            var servers: [ServerProcess] = []
            defer { for server in servers { _ = server.stop() } }
            for _ in 0..<3 { servers.append(try startNode()) }
            try helper.protect(names, through: servers[0], policy: "daily", keepDays: 90)
            let started = Date()

            func live() -> [ServerProcess] { servers.filter(\.process.isRunning) }
            func leader() throws -> (NodeTests.Node, ServerProcess)? {
                let listed = try helper.nodes(live()[0])
                guard let node = listed.first(where: \.leader) else { return nil }
                return live().first { $0.process.processIdentifier == node.pid }.map { (node, $0) }
            }

            // About five slots in: kill -9 the leader, and start a node in its place.
            try await pause(5 * Self.slotSeconds)
            _ = try await helper.waitForNodes(live()[0], within: 30) { $0.contains(where: \.leader) }
            let (_, oldLeader) = try #require(try leader())
            kill(oldLeader.process.processIdentifier, SIGKILL)
            oldLeader.process.waitUntilExit()
            let survivor = try #require(live().first)
            let (_, takeover) = try await helper.waitForNodes(survivor, within: 60) { nodes in
                nodes.contains { $0.leader && $0.alive && $0.pid != oldLeader.process.processIdentifier }
            }
            #expect(takeover < 4 + 1 + 20, "another node led \(takeover) s after the leader died (lease 4 s, heartbeat 1 s)")
            servers.append(try startNode())

            // About ten slots in: kill -9 a node while it runs a backup, and start another.
            try await pause(max(0, 10 * Self.slotSeconds - Date().timeIntervalSince(started)))
            var victim: ServerProcess?
            var victimJobs: [String] = []
            let deadline = Date().addingTimeInterval(60)
            while victim == nil && Date() < deadline {
                for server in live() {
                    let pid = server.process.processIdentifier
                    let running = try psql(
                        "SELECT id FROM jobs WHERE status = 'InProgress' AND type = 'Backup' AND owner LIKE '%:\(pid):%'",
                        database: url)
                    if !running.isEmpty {
                        kill(pid, SIGKILL)
                        victim = server
                        victimJobs = running.split(separator: "\n").map(String.init)
                        break
                    }
                }
                if victim == nil { try await pause(0.02) }
            }
            let killed = try #require(victim, "no node ran a backup within a minute")
            killed.process.waitUntilExit()
            let killedAt = Date()
            servers.append(try startNode())
            // Its jobs end JobInterrupted within the lease (and a heartbeat or two of the leader).
            var interruptedAfter: Double?
            while interruptedAfter == nil && Date().timeIntervalSince(killedAt) < 60 {
                let states = try psql("SELECT status FROM jobs WHERE id IN (\(victimJobs.map { "'\($0)'" }.joined(separator: ",")))",
                                      database: url)
                if !states.contains("InProgress") { interruptedAfter = Date().timeIntervalSince(killedAt) } else { try await pause(0.1) }
            }
            let after = try #require(interruptedAfter, "the dead node's jobs were not interrupted within a minute")
            // The lease (4 s), a new leader's election when the victim led, and its next tick;
            // the margin is for a loaded machine (measured 5.1–9.6 s).
            #expect(after < 4 + 2 + 25, "interrupted \(after) s after the node died")

            // Twenty slots at least, then every job of those slots ended.
            try await pause(max(0, 21 * Self.slotSeconds - Date().timeIntervalSince(started)))
            let cutoff = try #require(Self.scheduledBackups(url).map(\.slot).max())
            var rows: [BackupRow] = []
            for _ in 0..<600 {
                rows = try Self.scheduledBackups(url).filter { $0.slot < cutoff }
                if rows.allSatisfy({ $0.status != "Queued" && $0.status != "InProgress" }) { break }
                try await pause(0.1)
            }
            let slots = Set(rows.map(\.slot)).sorted()
            print("cluster: \(rows.count) scheduled backups over \(slots.count) slots; leader took over in \(takeover) s; jobs of the killed node ended \(after) s after it died")
            // The first slot may have come while the VMs were being protected: counted from the second.
            let counted = Array(slots.dropFirst())
            #expect(counted.count >= 18, "slots: \(slots.count)")
            for (earlier, later) in zip(counted, counted.dropFirst()) {
                #expect(later.timeIntervalSince(earlier) == 86_400, "no slot went without backups: \(earlier) → \(later)")
            }
            let killedPID = killed.process.processIdentifier
            for name in names {
                let mine = rows.filter { $0.vm == name && $0.slot >= counted[0] }
                #expect(mine.map(\.slot).sorted() == counted, "\(name): one job per slot, none missing, none twice")
                for row in mine where row.status != "Succeeded" {
                    // Only the backups of the node killed in the middle of them may have failed.
                    #expect(row.status == "Failed" && row.errorCode == "JobInterrupted"
                                && (row.owner.contains(":\(killedPID):") || row.owner.contains(":\(oldLeader.process.processIdentifier):")),
                            "\(name) slot \(row.slot): \(row.status) \(row.errorCode) on \(row.owner)")
                    #expect(mine.contains { $0.slot > row.slot && $0.status == "Succeeded" }, "\(name) backed up at a later slot")
                }
            }
            #expect(Set(rows.map(\.owner)).count >= 3, "the work was spread over the nodes")
            // Nothing of an interrupted backup is visible: no point names its job. One killed
            // after its commit is recorded as the success it was, with its one point.
            for id in victimJobs {
                let status = try psql("SELECT status FROM jobs WHERE id = '\(id)'", database: url)
                let points = try psql("SELECT count(*) FROM recovery_points WHERE doc::json->>'job' = '\(id)'", database: url)
                #expect(points == (status == "Succeeded" ? "1" : "0"), "\(id): \(status) with \(points) points")
            }
            // Every succeeded backup committed exactly its one point.
            let succeeded = rows.filter { $0.status == "Succeeded" }.map(\.id)
            let committed = try psql("SELECT doc::json->>'job' FROM recovery_points", database: url).split(separator: "\n").map(String.init)
            #expect(Set(succeeded).isSubset(of: Set(committed)))
            #expect(committed.count == Set(committed).count, "two points of one job")
            // The newest point of a VM the killed node was backing up restores to its disk.
            let victimJob = try #require(victimJobs.first)
            let vm = try #require(try psql("SELECT vm_name FROM jobs WHERE id = '\(victimJob)'", database: url).nonEmpty)
            let newest = try #require(rows.filter { $0.vm == vm && $0.status == "Succeeded" }.max { $0.slot < $1.slot })
            let point = try psql("SELECT doc::json->'details'->>'point' FROM jobs WHERE id = '\(newest.id)'", database: url)
            // The slots go on meanwhile: a backup of the VM may hold it (B6) for a moment.
            var restore = try coffre.run(["restore", vm, "--point", point, "--to", "cluster-\(vm)"], env: live()[0].adminEnvironment, timeout: 300)
            for _ in 0..<60 where restore.stderr.contains("AnotherOperationInProgress") {
                try await pause(0.5)
                restore = try coffre.run(["restore", vm, "--point", point, "--to", "cluster-\(vm)"], env: live()[0].adminEnvironment, timeout: 300)
            }
            #expect(restore.succeeded, "\(restore)")
            #expect(try readFile(data.appendingPathComponent("restores/cluster-\(vm)/os.img"))
                    == readFile(data.appendingPathComponent("fabric/prod/\(vm)/os.img")))
        } }
    }

    /// `scripts/pg-harness` with its cluster in `folder`: a PostgreSQL of this test alone, which
    /// it can restart without disturbing the other tests.
    static func pgHarness(_ command: String, folder: String) throws -> RunResult {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/pg-harness")
        let result = try runProcess(script, [command], environment: ["COFFRE_PG_DIR": folder], timeout: 300)
        guard result.status == 0 else { throw HarnessError("pg-harness \(command) failed: \(result)") }
        return result
    }

    @Test("PostgreSQL restarted under load: both nodes reconnect, and every backup asked for ends, once: none lost, none run twice",
          .enabled(if: PostgresTestServer.live, "needs scripts/pg-harness up"))
    func postgresRestartedUnderLoad() async throws {
        let coffre = try Coffre()
        let helper = NodeTests()
        let folder = "/tmp/coffre-pg-restart-\(UUID().uuidString.prefix(8))"
        _ = try Self.pgHarness("up", folder: folder)
        defer { _ = try? Self.pgHarness("down", folder: folder) }
        let env = try String(contentsOfFile: folder + "/env", encoding: .utf8)
        let url = try #require(env.split(separator: "\n").first { $0.contains("COFFRE_PG_URL=") }?
            .split(separator: "=", maxSplits: 1).last.map(String.init))
        try await withTempDir { tmp in
            let data = tmp.appendingPathComponent("data")
            try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
            try Data(#"{"maxConcurrentBackups": 2, "leaderLeaseSeconds": 6, "heartbeatSeconds": 1, "tickSeconds": 1}"#.utf8)
                .write(to: data.appendingPathComponent("coffre.json"))
            var rng = SplitMix64(seed: 31)
            let names = (0..<8).map { "db\($0)" }
            for name in names { _ = try ControlPlaneTests().makeVM(data, name: name, size: 1 * MiB, content: rng.bytes(256 << 10)) }
            var servers: [ServerProcess] = []
            defer { for server in servers { _ = server.stop() } }
            for _ in 0..<2 { servers.append(try ServerProcess(coffre, data: data, environment: ["COFFRE_CATALOG": url])) }
            try helper.protect(names, through: servers[0], policy: "nightly", keepDays: 30)

            // Backups asked for without a pause, to either node, for 30 s; PostgreSQL restarts at 10 s.
            var accepted: [String] = []
            var refusedWhileDown = 0
            var restartedAt: Date?
            let start = Date()
            var round = 0
            while Date().timeIntervalSince(start) < 30 {
                if restartedAt == nil && Date().timeIntervalSince(start) > 10 {
                    _ = try Self.pgHarness("restart", folder: folder)
                    restartedAt = Date()
                }
                let server = servers[round % 2]
                round += 1
                if let job = try? helper.api(server, "POST", "/api/v1/vms/\(names[round % names.count])/backup", as: NodeTests.QueuedJob.self) {
                    accepted.append(job.id)
                } else {
                    refusedWhileDown += 1  // the VM is busy (409), or the catalog restarts (503)
                }
                try await pause(0.15)
            }
            #expect(restartedAt != nil)
            var jobs: [NodeTests.QueuedJob] = []
            for _ in 0..<1200 {
                jobs = accepted.compactMap { id in try? helper.api(servers[0], "GET", "/api/v1/jobs/\(id)", as: NodeTests.QueuedJob.self) }
                if jobs.count == accepted.count && jobs.allSatisfy({ $0.status != "Queued" && $0.status != "InProgress" }) { break }
                try await pause(0.1)
            }
            #expect(jobs.count == accepted.count, "every job asked for is recorded")
            #expect(jobs.allSatisfy { $0.status != "Queued" && $0.status != "InProgress" }, "every job ended: \(jobs.map(\.status))")
            let succeeded = jobs.filter { $0.status == "Succeeded" }
            #expect(succeeded.count >= accepted.count / 2, "\(succeeded.count) of \(accepted.count) succeeded")
            // None ran twice: one point per succeeded job, none for the others.
            let committed = try psql("SELECT doc::json->>'job' FROM recovery_points", database: url).split(separator: "\n").map(String.init)
            #expect(committed.count == Set(committed).count, "a job committed two points")
            #expect(Set(committed) == Set(succeeded.map(\.id)), "points and succeeded jobs match")
            // After the restart the nodes went on: jobs asked for later succeeded, and both are alive.
            let later = try psql("SELECT count(*) FROM jobs WHERE status = 'Succeeded' AND started_at > \(restartedAt!.timeIntervalSinceReferenceDate + 2)",
                                 database: url)
            #expect((Int(later) ?? 0) > 0, "no backup succeeded after the restart")
            let (alive, _) = try await helper.waitForNodes(servers[1], within: 30) { $0.filter(\.alive).count == 2 }
            #expect(alive.filter(\.leader).count == 1)
            print("PostgreSQL restart under load: \(accepted.count) backups accepted, \(refusedWhileDown) refused, \(succeeded.count) succeeded")
        }
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
