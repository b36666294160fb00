import CoffreTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Several `coffre serve` nodes on one PostgreSQL catalog: who they are and who leads.
@Suite("Nodes sharing a catalog", .serialized)
struct NodeTests {
    struct Node: Decodable {
        var id: String
        var address: String
        var version: String
        var alive: Bool
        var leader: Bool
        var runningJobs: Int
        var pid: Int32? { id.split(separator: ":").dropFirst().first.flatMap { Int32($0) } }
    }

    /// `GET /api/v1/nodes` of `server`, as its first admin.
    func nodes(_ server: ServerProcess) throws -> [Node] {
        try api(server, "GET", "/api/v1/nodes", as: [Node].self)
    }

    /// `waitForNodes` without holding a cooperative thread while it waits.
    func waitForNodes(_ server: ServerProcess, within seconds: Double, _ condition: ([Node]) -> Bool) async throws -> ([Node], Double) {
        let start = Date()
        var last: [Node] = []
        while Date().timeIntervalSince(start) < seconds {
            last = (try? nodes(server)) ?? []
            if condition(last) { return (last, Date().timeIntervalSince(start)) }
            try await pause(0.1)
        }
        throw HarnessError("the nodes did not get there within \(seconds) s: \(last)")
    }

    /// Polls `server`'s node list until `condition` holds; the list and the seconds it took.
    func waitForNodes(_ server: ServerProcess, within seconds: Double, _ condition: ([Node]) -> Bool) throws -> ([Node], Double) {
        let start = Date()
        var last: [Node] = []
        while Date().timeIntervalSince(start) < seconds {
            last = (try? nodes(server)) ?? []
            if condition(last) { return (last, Date().timeIntervalSince(start)) }
            usleep(100_000)
        }
        throw HarnessError("the nodes did not get there within \(seconds) s: \(last)")
    }

    @Test("on the embedded SQLite catalog, the one node leads")
    func aloneOnSQLite() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            let server = try ServerProcess(coffre, data: tmp.appendingPathComponent("data"))
            defer { _ = server.stop() }
            let listed = try nodes(server)
            #expect(listed.count == 1)
            #expect(listed.first?.leader == true && listed.first?.alive == true)
            #expect(listed.first?.pid == server.process.processIdentifier)
            #expect(server.url.hasSuffix(listed.first?.address.split(separator: ":").last.map(String.init) ?? "?"))
        }
    }

    @Test("three nodes on PostgreSQL: exactly one leads; kill -9 the leader and another leads within the lease; a graceful stop resigns the lease",
          .enabled(if: PostgresTestServer.live, "needs scripts/pg-harness up"))
    func leaderElection() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in try CatalogKind.postgres.withCatalog { catalog in
            let data = tmp.appendingPathComponent("data")
            try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
            // A short lease for the test, 6 s with a heartbeat every 2 s; the bounds below leave
            // room for a loaded machine.
            try Data(#"{"leaderLeaseSeconds": 6, "heartbeatSeconds": 2}"#.utf8).write(to: data.appendingPathComponent("coffre.json"))
            var servers: [ServerProcess] = []
            defer { for server in servers { _ = server.stop() } }
            for _ in 0..<3 { servers.append(try ServerProcess(coffre, data: data, environment: catalog)) }

            let (all, _) = try waitForNodes(servers[0], within: 60) { nodes in
                nodes.filter(\.alive).count == 3 && nodes.filter(\.leader).count == 1
            }
            #expect(Set(all.compactMap(\.pid)) == Set(servers.map(\.process.processIdentifier)), "every node is listed")
            // Every node sees the same: one leader, the same one.
            for server in servers {
                #expect(try nodes(server).filter(\.leader).map(\.id) == all.filter(\.leader).map(\.id))
            }

            // kill -9 the leader: another leads within the lease (6 s) and a heartbeat (2 s).
            let leader = try #require(all.first { $0.leader })
            let victim = try #require(servers.firstIndex { $0.process.processIdentifier == leader.pid })
            kill(servers[victim].process.processIdentifier, SIGKILL)
            servers[victim].process.waitUntilExit()
            let survivors = servers.indices.filter { $0 != victim }.map { servers[$0] }
            let (after, seconds) = try waitForNodes(survivors[0], within: 60) { nodes in
                nodes.contains { $0.leader && $0.id != leader.id }
            }
            print("leader killed: another node led after \(String(format: "%.1f", seconds)) s")
            #expect(seconds < 6 + 2 + 10, "took \(seconds) s")
            #expect(after.filter(\.leader).count == 1)
            #expect(after.first { $0.id == leader.id }?.alive == false, "the dead node is listed, not alive")

            // SIGTERM the new leader: it resigns, and the last node leads without waiting for the lease.
            let second = try #require(after.first { $0.leader })
            let stopping = try #require(survivors.first { $0.process.processIdentifier == second.pid })
            let last = try #require(survivors.first { $0.process.processIdentifier != second.pid })
            #expect(stopping.stop() == 0)
            // It resigned on its way out: the lease is over (or already another's) at once,
            // not only once it would have lapsed.
            let url = try #require(catalog["COFFRE_CATALOG"])
            let resigned = try psql("SELECT (node <> '\(second.id)' OR expires_at <= now())::text FROM leader", database: url)
            #expect(resigned == "true", "\(resigned)")
            let (_, handover) = try waitForNodes(last, within: 60) { nodes in
                nodes.contains { $0.leader && $0.pid == last.process.processIdentifier }
            }
            print("leader stopped: the last node led after \(String(format: "%.1f", handover)) s")
        } }
    }

    /// Discovers, registers and protects `names` through `server` (remote mode), under a new
    /// daily policy keeping `days` days.
    func protect(_ names: [String], through server: ServerProcess, policy: String, keepDays days: Int) throws {
        let coffre = try Coffre()
        let remote = server.adminEnvironment
        try coffre.ok(["discover"], env: remote)
        try coffre.ok(["register"] + names, env: remote, timeout: 300)
        try coffre.ok(["policy", "create", policy, "--daily", "22:00", "--keep-days", String(days)], env: remote)
        try coffre.ok(["protect"] + names + ["--policy", policy], env: remote, timeout: 300)
    }

    struct QueuedJob: Decodable {
        var id: String
        var status: String
        var owner: String
        var vm: String?
        var details: [String: String]
    }

    /// Runs `curl` against `server` as its first admin and decodes the answer.
    func api<T: Decodable>(_ server: ServerProcess, _ method: String, _ path: String, as type: T.Type) throws -> T {
        let token = try String(contentsOf: server.data.appendingPathComponent("admin-token"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let body = method == "POST" ? ["-H", "Content-Type: application/json", "--data-binary", "{}"] : []
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/curl"), [
            "-sf", "-m", "10", "-X", method, "-H", "Authorization: Bearer \(token)", "-H", "Origin: \(server.url)",
        ] + server.curlTrust + body + [server.url + path])
        guard result.status == 0 else { throw HarnessError("\(method) \(path) failed: \(result)") }
        return try decodeJSON(T.self, result.stdout)
    }

    @Test("three nodes on PostgreSQL and one S3 vault (serve --vault s3://…): queued backups are claimed by every node, each exactly once, within each node's limit",
          .enabled(if: PostgresTestServer.live && S3TestGateway.live, "needs scripts/pg-harness up and scripts/s3-harness up"))
    func queuedBackupsSpreadOverTheNodes() async throws {
        let coffre = try Coffre()
        try await withTempDir { tmp in try await CatalogKind.postgres.withCatalog { catalog in
            let data = tmp.appendingPathComponent("data")
            try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
            // One backup at a time per node: twelve requests to one node must spread.
            try Data(#"{"maxConcurrentBackups": 1, "leaderLeaseSeconds": 6, "heartbeatSeconds": 2}"#.utf8)
                .write(to: data.appendingPathComponent("coffre.json"))
            var rng = SplitMix64(seed: 17)
            let names = (0..<12).map { "vm\($0)" }
            for name in names { _ = try ControlPlaneTests().makeVM(data, name: name, size: 2 * MiB, content: rng.bytes(512 << 10)) }
            let vault = "s3://\(S3TestGateway.bucket)/\(S3TestGateway.newPrefix("nodes"))"
            let s3 = CLIStore.gatewayEnvironment
            try coffre.ok(["vault", "create", vault, "--create-bucket"], env: s3)
            var servers: [ServerProcess] = []
            defer { for server in servers { _ = server.stop() } }
            for _ in 0..<3 {
                servers.append(try ServerProcess(coffre, data: data, environment: catalog.merging(s3) { $1 },
                                                 arguments: ["--vault", vault]))
            }
            let remote = servers[0].adminEnvironment
            try protect(names, through: servers[0], policy: "nightly", keepDays: 30)

            var requested: [QueuedJob] = []
            for name in names { requested.append(try api(servers[0], "POST", "/api/v1/vms/\(name)/backup", as: QueuedJob.self)) }
            #expect(requested.contains { $0.status == "Queued" }, "one node with one place cannot start twelve at once")
            // A second request for a VM whose backup is queued or running is refused (B6).
            let again = try runProcess(coffre.binary, ["backup", names[11]], environment: remote)
            #expect(again.status != 0 && again.stderr.contains("AnotherOperationInProgress"), "\(again)")

            var most = 0
            var finished: [QueuedJob] = []
            let start = Date()
            while Date().timeIntervalSince(start) < 300 {
                let running = try nodes(servers[1]).map(\.runningJobs)
                most = max(most, running.max() ?? 0)
                finished = try requested.map { try api(servers[2], "GET", "/api/v1/jobs/\($0.id)", as: QueuedJob.self) }
                if finished.allSatisfy({ $0.status != "Queued" && $0.status != "InProgress" }) { break }
                try await pause(0.2)
            }
            #expect(finished.map(\.status) == Array(repeating: "Succeeded", count: names.count), "\(finished.map(\.status))")
            let owners = Set(finished.map(\.owner))
            #expect(owners.count >= 2, "the work was spread: \(owners)")
            #expect(owners.isSubset(of: Set(try nodes(servers[0]).map(\.id))), "every job ran on a node")
            #expect(most <= 1, "a node ran more backups than its limit")
            #expect(finished.allSatisfy { $0.details["claimedAt"] != nil })
            // Exactly one point per VM, each restorable from the shared S3 vault by any node.
            let points = finished.compactMap { $0.details["point"] }
            #expect(Set(points).count == names.count)
            // A relative folder lands in the server's restore root.
            try coffre.ok(["restore", names[5], "--point", finished[5].details["point"] ?? "?", "--to", "r5"],
                          env: servers[2].adminEnvironment)
            let original = try readFile(data.appendingPathComponent("fabric/prod/\(names[5])/os.img"))
            #expect(try readFile(data.appendingPathComponent("restores/r5/os.img")) == original)
        } }
    }
}
