import CoffreCore
import CoffrePostgres
import CoffreSQLite
import CoffreTesting
import Foundation
import Testing

/// What only the PostgreSQL catalog has: a server shared by several nodes, migrations applied
/// once whoever starts first, a server that cannot be reached, URLs. On the real server of
/// scripts/pg-harness.
@Suite(.enabled(if: PostgresTestServer.live, "needs scripts/pg-harness up"))
struct PostgresCatalogTests {
    @Test func dataSurvivesCloseAndReopenAndIsSharedByTwoNodes() async throws {
        try await withTemporaryDatabase { url in
            let item = Sample.item("item-web", vm: Sample.key("web"))
            var point = Sample.point("p1", of: item, takenAt: Sample.at(1.5))
            point.definition = "<domain><name>web</name></domain>"
            let job = Sample.job("job-1")
            let first = try await PostgresCatalog.open(url: url)
            let second = try await PostgresCatalog.open(url: url)
            defer { second.close() }
            try await first.commitPoint(point, item: item)
            _ = try await first.insertJob(job, lock: "cs1/web")
            first.close()

            #expect(try await second.points(item: item.id) == [point], "the definition is kept too")
            #expect(try await second.insertJob(Sample.job("job-2"), lock: "cs1/web") == job,
                    "a lock taken by one node holds for the other")
            #expect(try await second.requestCancel(jobID: job.id)?.cancelRequested == true)

            let third = try await PostgresCatalog.open(url: url)
            defer { third.close() }
            #expect(try await third.job(id: job.id)?.cancelRequested == true, "a cancel asked on one node is seen on another (B7)")
        }
    }

    @Test func nodesStartingTogetherApplyEachMigrationOnce() async throws {
        try await withTemporaryDatabase { url in
            let catalogs = try await withThrowingTaskGroup(of: PostgresCatalog.self) { group in
                for _ in 0..<6 { group.addTask { try await PostgresCatalog.open(url: url) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            defer { catalogs.forEach { $0.close() } }
            #expect(catalogs.count == 6)
            let versions = try await migrationVersions(url)
            #expect(!versions.isEmpty && versions == Array(1...versions.count), "every migration, once: \(versions)")
            try await catalogs[0].insertPolicy(Sample.policy("gold"))
            #expect(try await catalogs[5].policies() == [Sample.policy("gold")])
        }
    }

    @Test func aDatabaseMigratedByANewerCoffreIsRefused() async throws {
        try await withTemporaryDatabase { url in
            try await PostgresCatalog.open(url: url).close()
            try await administer("INSERT INTO coffre_migrations (version, name) VALUES (999, 'from the future')", database: url)
            let error = await #expect(throws: CoffreError.self) { try await PostgresCatalog.open(url: url) }
            #expect(error?.code == .vaultFormatUnsupported)
            #expect(error?.message.contains("newer version of Coffre") == true)
        }
    }

    @Test func concurrentJobsOfOneLockFromManyNodesInsertOnce() async throws {
        try await withTemporaryDatabase { url in
            var nodes: [PostgresCatalog] = []
            for _ in 0..<4 { nodes.append(try await PostgresCatalog.open(url: url)) }
            defer { nodes.forEach { $0.close() } }
            let holders = try await withThrowingTaskGroup(of: Job?.self) { group in
                for i in 0..<40 {
                    let node = nodes[i % nodes.count]
                    group.addTask { try await node.insertJob(Sample.job("job-\(i)"), lock: "cs1/web") }
                }
                return try await group.reduce(into: [Job?]()) { $0.append($1) }
            }
            let inserted = holders.filter { $0 == nil }.count
            #expect(inserted == 1, "exactly one node starts the operation (B6)")
            let winner = try await nodes[0].jobs(JobFilter(status: .inProgress))
            #expect(winner.count == 1)
            #expect(Set(holders.compactMap { $0?.id }) == Set(winner.map(\.id)), "every loser is told who holds the lock")
        }
    }

    @Test func everyValueIsBoundNeverSplicedIntoSQL() async throws {
        try await withTemporaryDatabase { url in
            let catalog = try await PostgresCatalog.open(url: url)
            defer { catalog.close() }
            let hostile = "web'); DROP TABLE jobs; --"
            let item = Sample.item("item-\(hostile)", vm: Sample.key(hostile, in: "cs'1"))
            try await catalog.commitPoint(Sample.point("p-\(hostile)", of: item, takenAt: Sample.at(2)), item: item)
            _ = try await catalog.insertJob(Sample.job("job-\(hostile)", vm: item.vm), lock: hostile)
            #expect(try await catalog.item(for: item.vm) == item)
            #expect(try await catalog.jobs(JobFilter(vm: item.vm)).map(\.id) == ["job-\(hostile)"])
            #expect(try await catalog.points(item: item.id).map(\.id) == ["p-\(hostile)"])
        }
    }

    @Test func aServerThatDoesNotAnswerIsCatalogUnreachable() async throws {
        // A loopback port nobody listens on (tcpmux: privileged, never served here).
        let port = 1
        let error = await #expect(throws: CoffreError.self) {
            try await PostgresCatalog.open(url: "postgres://coffre@127.0.0.1:\(port)/coffre",
                                           configuration: .init(timeout: .seconds(3)))
        }
        #expect(error?.code == .catalogUnreachable)
        #expect(error?.message.contains("postgres://coffre@127.0.0.1:\(port)/coffre") == true)
        #expect(error?.workaround?.contains("pg_isready") == true)
    }

    @Test func anUnknownDatabaseOrRoleIsCatalogUnreachable() async throws {
        let unknownDatabase = PostgresTestServer.url(database: "no_such_database")
        let error = await #expect(throws: CoffreError.self) {
            try await PostgresCatalog.open(url: unknownDatabase, configuration: .init(timeout: .seconds(60)))
        }
        #expect(error?.code == .catalogUnreachable)
        #expect(error?.message.contains("no_such_database") == true)
        #expect(error?.message.contains("does not exist") == true, "the server's own words: \(error?.message ?? "")")
        let unknownRole = PostgresTestServer.url.replacingOccurrences(of: "//coffre@", with: "//nobody@")
        let refused = await #expect(throws: CoffreError.self) {
            try await PostgresCatalog.open(url: unknownRole, configuration: .init(timeout: .seconds(60)))
        }
        #expect(refused?.code == .catalogUnreachable)
        #expect(refused?.message.contains("nobody") == true)
    }

    @Test func aSQLiteCatalogIsImportedWholeIntoAnEmptyDatabaseOnly() async throws {
        try await withTemporaryFolder { folder in try await withTemporaryDatabase { url in
            // A SQLite catalog with a record of every kind, every field set.
            let source = try SQLiteCatalog(path: folder + "/catalog.sqlite")
            try await source.recordFabric(FabricRecord(name: "f1", kind: "local", region: "eu-west", address: "/srv"))
            _ = try await source.applyDiscovery(fabric: "f1", vms: [Sample.vm("web"), Sample.vm("db"), Sample.vm("old")], at: Sample.t0)
            _ = try await source.applyDiscovery(fabric: "f1", vms: [Sample.vm("web"), Sample.vm("db")], at: Sample.at(60))
            var policy = Sample.policy("gold")
            policy.verification = VerificationPolicy(schedule: .weekly(on: [.sunday], at: TimeOfDay(hour: 4, minute: 0)),
                                                     checks: [.data], bootCommand: nil, bootTimeoutSeconds: 120)
            try await source.insertPolicy(policy)
            try await source.insertPolicy(Sample.policy("silver", days: 7))
            let web = Sample.item("item-web", vm: Sample.key("web"))
            let db = Sample.item("item-db", vm: Sample.key("db"), policy: "silver", state: .stopped)
            var p1 = Sample.point("p1", of: web, takenAt: Sample.at(1))
            p1.definition = "<domain/>"
            try await source.commitPoint(p1, item: web)
            try await source.commitPoint(Sample.point("p2", of: web, takenAt: Sample.at(2)), item: web)
            try await source.commitPoint(Sample.point("p3", of: db, takenAt: Sample.at(3)), item: db)
            try await source.recordVerification(
                PointVerification(at: Sample.at(7), checks: [.data], succeeded: true, job: "job-v", detail: "1 disk", error: nil),
                point: "p2")
            for (i, status) in [JobStatus.succeeded, .failed, .cancelled].enumerated() {
                var job = Sample.job("job-\(i)", startedAt: Sample.at(Double(i)))
                _ = try await source.insertJob(job, lock: "cs1/web")
                job.status = status
                job.cancelRequested = status == .cancelled
                try await source.updateJob(job)
            }
            let ci = APIToken(name: "ci", role: .operator, hash: String(repeating: "c", count: 64), createdAt: Sample.at(9.5))
            try await source.insertToken(ci, ifNoneExists: true)
            let snapshot = try await source.snapshot()
            try source.close()
            #expect(snapshot.counts.map(\.count) == [1, 3, 2, 2, 3, 3, 1])

            let target = try await PostgresCatalog.open(url: url)
            defer { target.close() }
            try await target.importSnapshot(snapshot)
            let copy = try await target.snapshot()
            #expect(copy == snapshot, "differs in \(snapshot.differences(from: copy))")
            #expect(try await target.point(id: "p1")?.definition == "<domain/>")
            #expect(try await target.insertJob(Sample.job("job-new"), lock: "cs1/web") == nil, "ended jobs hold no lock")

            // A second import into the now non-empty database is refused and writes nothing.
            let again = await #expect(throws: CoffreError.self) { try await target.importSnapshot(snapshot) }
            #expect(again?.code == .catalogNotEmpty)
            #expect(again?.message.contains("3 VMs") == true)
            #expect(try await target.token(hash: ci.hash) == ci, "a token of the SQLite catalog is accepted on PostgreSQL")
            #expect(try await target.snapshot().counts.map(\.count) == [1, 3, 2, 2, 3, 4, 1])
        } }
    }

    // These tests never depend on how fast the machine answers: a lease meant to run is ten
    // minutes long, and one meant to lapse is renewed for a millisecond, then waited past.

    @Test func oneLeaderAtATimeWithATermThatGrowsAtEachChangeOfHands() async throws {
        try await withTemporaryDatabase { url in
            let a = try await PostgresCatalog.open(url: url)
            let b = try await PostgresCatalog.open(url: url)
            defer { a.close(); b.close() }
            let lease = Duration.seconds(600)
            let first = try #require(try await a.lead(node: "a", lease: lease))
            #expect(first.term == 1 && first.remaining > .seconds(590) && first.remaining <= lease)
            #expect(try await b.lead(node: "b", lease: lease) == nil, "the lease is a's")
            #expect(try await a.lead(node: "a", lease: lease)?.term == 1, "a renewal keeps the term")
            #expect(try await b.holdsLeadership(node: "a", term: 1))
            #expect(try await a.holdsLeadership(node: "b", term: 1) == false)

            // a's lease lapses on the database's clock (renewed for 1 ms, then waited past):
            // b takes over under a new term.
            #expect(try await a.lead(node: "a", lease: .milliseconds(1))?.term == 1)
            try await Task.sleep(for: .milliseconds(50))
            #expect(try await a.holdsLeadership(node: "a", term: 1) == false, "a lapsed lease is nobody's")
            let second = try #require(try await b.lead(node: "b", lease: lease))
            #expect(second.term == 2)
            #expect(try await a.lead(node: "a", lease: lease) == nil, "a, back, does not take it back")
            #expect(try await a.holdsLeadership(node: "a", term: 1) == false, "the old term is fenced off")

            // A graceful stop gives it up at once, and only under one's own term.
            try await a.resign(node: "b", term: 1)
            #expect(try await a.lead(node: "a", lease: lease) == nil, "a stale resignation changes nothing")
            try await b.resign(node: "b", term: 2)
            #expect(try await a.lead(node: "a", lease: lease)?.term == 3)
        }
    }

    @Test func nodesAreListedAliveWhileTheyHeartbeatAndOneIsLeader() async throws {
        try await withTemporaryDatabase { url in
            let catalog = try await PostgresCatalog.open(url: url)
            defer { catalog.close() }
            let long = Duration.seconds(600)
            #expect(try await catalog.isAlive(node: "n1", lease: long) == nil, "never heard of")
            try await catalog.heartbeat(NodeAnnouncement(id: "n2", address: "127.0.0.1:8082", version: "1.0"), runningJobs: 0)
            try await catalog.heartbeat(NodeAnnouncement(id: "n1", address: "127.0.0.1:8081", version: "1.0"), runningJobs: 2)
            // A command-line process: alive to the leader, not a node.
            try await catalog.heartbeat(NodeAnnouncement(id: "c1", address: "", version: "1.0", kind: .client), runningJobs: 1)
            #expect(try await catalog.isAlive(node: "c1", lease: long) == true)
            _ = try await catalog.lead(node: "n2", lease: long)
            let nodes = try await catalog.nodes(lease: long, forgetAfter: .seconds(3600))
            #expect(nodes.map(\.id) == ["n1", "n2"], "clients are not listed")
            #expect(nodes.map(\.alive) == [true, true] && nodes.map(\.leader) == [false, true])
            #expect(nodes.map(\.runningJobs) == [2, 0] && nodes[0].address == "127.0.0.1:8081")
            #expect(abs(nodes[0].lastHeartbeat.timeIntervalSinceNow) < 600)

            // n2 goes silent and its lease lapses: judged with a lease shorter than its silence.
            _ = try await catalog.lead(node: "n2", lease: .milliseconds(1))
            try await Task.sleep(for: .seconds(1.2))
            try await catalog.heartbeat(NodeAnnouncement(id: "n1", address: "127.0.0.1:8081", version: "1.0"), runningJobs: 1)
            let later = try await catalog.nodes(lease: .seconds(1), forgetAfter: .seconds(3600))
            #expect(later.first { $0.id == "n2" }?.alive == false, "n2 went silent")
            #expect(later.map(\.leader) == [false, false], "its lease lapsed too")
            #expect(try await catalog.isAlive(node: "n2", lease: .seconds(1)) == false)
            #expect(try await catalog.isAlive(node: "n1", lease: long) == true)
            #expect(try await catalog.nodes(lease: long, forgetAfter: long).first { $0.id == "n1" }?.runningJobs == 1)
            let remembered = try await catalog.nodes(lease: long, forgetAfter: .seconds(1)).map(\.id)
            #expect(!remembered.contains("n2"), "n2 forgotten: \(remembered)")
        }
    }

    @Test func urlsAreCheckedAndPasswordsNeverShown() throws {
        let url = try PostgresURL("postgresql://node:s3cret@db.example:6432/vault?sslmode=require")
        #expect(url.user == "node" && url.password == "s3cret" && url.host == "db.example" && url.port == 6432)
        #expect(url.database == "vault" && url.requiresTLS)
        #expect(url.description == "postgres://node@db.example:6432/vault?sslmode=require")
        #expect(try PostgresURL("postgres://u@h/d", environment: ["PGPASSWORD": "pw"]).password == "pw")
        #expect(try PostgresURL("postgres://u@h/d").port == 5432)
        for bad in ["postgres://h/d", "postgres://u@/d", "postgres://u@h", "postgres://u@h/d?sslmode=prefer",
                    "postgres://u@h/d?application_name=x", "mysql://u@h/d", "postgres://u:hunter2@h"] {
            let error = #expect(throws: CoffreError.self, "\(bad)") { try PostgresURL(bad) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("hunter2") == false, "no password in messages")
        }
    }
}

/// The migrations applied to the database at `url`.
private func migrationVersions(_ url: String) async throws -> [Int] {
    try await administerQuery("SELECT version::text FROM coffre_migrations ORDER BY version", database: url)
        .map { Int($0)! }
}
