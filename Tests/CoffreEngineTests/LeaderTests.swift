import CoffreCore
import CoffreEngine
import CoffreStorage
import CoffreTesting
import Foundation
import Testing

/// Nodes sharing a catalog: only the leader runs the scheduler, and a leader replaced while it
/// was presumed dead acts no more under its old term. The coordinator's clock (the database's)
/// is the test's.
@Suite struct LeaderTests {
    func node(_ id: String, _ h: Harness, _ coordinator: MemoryCoordinator) -> Engine {
        var configuration = Engine.Configuration(region: Harness.region)
        configuration.monitorInterval = .milliseconds(20)
        // A lease that outlasts any slowness of the machine: these tests let it lapse by moving
        // the coordinator's clock, never by waiting.
        configuration.leaderLease = .seconds(3600)
        return Engine(configuration: configuration, catalog: h.catalog, store: VaultPointStore(h.vault), fabrics: h.fabrics,
                      clock: h.clock, owner: id, isOwnerAlive: { _ in true }, coordinator: coordinator)
    }

    @Test func onlyTheLeaderSchedulesAndAReplacedLeaderIsFencedOff() async throws {
        let h = try await Harness()
        try await h.protectedVM("web")
        let coordinator = MemoryCoordinator(clock: h.clock)
        let a = node("node-a", h, coordinator)
        let b = node("node-b", h, coordinator)
        h.clock.set(ISO8601DateFormatter().date(from: "2026-11-23T22:05:00Z")!)
        #expect(await a.claimLeadership())
        #expect(await b.claimLeadership() == false)
        #expect(a.leaderTerm == 1 && b.leaderTerm == nil)

        await b.tick()
        #expect(try await h.catalog.jobs(JobFilter(type: .backup)).isEmpty, "a node that does not lead schedules nothing")
        await a.tick()
        let first = try await h.catalog.jobs(JobFilter(type: .backup))
        #expect(first.map(\.owner) == ["node-a"])
        _ = try await a.wait(for: try #require(first.first).id)

        // a stops renewing. On the database's clock its lease lapses, the next day's slot comes,
        // and b takes the lease over under a new term.
        h.clock.advance(by: 24 * 3600)
        #expect(await b.claimLeadership())
        #expect(b.leaderTerm == 2)
        // a's own clock says its lease still runs, but the database says the term is over.
        await a.tick()
        #expect(try await h.catalog.jobs(JobFilter(type: .backup)).count == 1, "the old leader starts nothing")
        await b.tick()
        let second = try await h.catalog.jobs(JobFilter(type: .backup))
        #expect(second.map(\.owner) == ["node-b", "node-a"], "the slot runs once, on the new leader")
        _ = try await b.wait(for: try #require(second.first).id)

        await b.resign()
        #expect(b.leaderTerm == nil)
        #expect(await a.claimLeadership(), "a resigned lease is free at once")
        #expect(a.leaderTerm == 3)
    }

    @Test func theJobsOfANodeThatStoppedHeartbeatingAreInterruptedByTheLeader() async throws {
        let h = try await Harness()
        try await h.protectedVM("web")
        let coordinator = MemoryCoordinator(clock: h.clock)
        let b = node("node-b", h, coordinator)
        try await coordinator.heartbeat(NodeAnnouncement(id: "node-a", address: "a:1", version: "t"), runningJobs: 1)
        try await coordinator.heartbeat(NodeAnnouncement(id: "node-b", address: "b:1", version: "t"), runningJobs: 0)
        // A job node-a was running when it died, as the catalog shows it: in progress, owned by node-a.
        let job = Job(id: Job.makeID(at: h.clock.now()), type: .backup, vm: VMKey(cloudService: "prod", name: "web"),
                      startedAt: h.clock.now(), owner: "node-a")
        #expect(try await h.catalog.insertJob(job, lock: "vm:prod/web") == nil)
        #expect(await b.claimLeadership())
        await b.tick()
        #expect(try await h.catalog.job(id: job.id)?.status == .inProgress, "node-a's heartbeat is fresh: its job runs")

        // node-a falls silent for longer than the lease (an hour here) on the database's clock.
        h.clock.advance(by: 3600 + 60)
        try await coordinator.heartbeat(NodeAnnouncement(id: "node-b", address: "b:1", version: "t"), runningJobs: 0)
        #expect(await b.claimLeadership())
        await b.tick()
        let ended = try #require(try await h.catalog.job(id: job.id))
        #expect(ended.status == .failed && ended.error?.code == .jobInterrupted)
        #expect(try await b.nodes().map(\.alive) == [false, true])
    }

    @Test func aCommandLineProcessHeartbeatsAsAClientAndItsJobsAreRecoveredWhenItFallsSilent() async throws {
        let h = try await Harness()
        try await h.protectedVM("web")
        try await h.protectedVM("db")
        let coordinator = MemoryCoordinator(clock: h.clock)
        let b = node("node-b", h, coordinator)
        // A command-line process of another host (its pid cannot be asked): one heartbeat, then
        // none for an hour, as if killed right after.
        var configuration = Engine.Configuration(region: Harness.region)
        configuration.leaderLease = .seconds(3600)
        configuration.heartbeatInterval = .seconds(3600)
        let client = Engine(configuration: configuration, catalog: h.catalog, store: VaultPointStore(h.vault), fabrics: h.fabrics,
                            clock: h.clock, owner: "host-c:42:1", isOwnerAlive: { _ in true }, coordinator: coordinator)
        client.heartbeatAsClient()
        try await h.eventually("the client's first heartbeat") {
            try await coordinator.isAlive(node: "host-c:42:1", lease: .seconds(3600)) == true
        }
        // Its job, and one of a process of another host that never heartbeated (an older coffre).
        let job = Job(id: Job.makeID(at: h.clock.now()), type: .backup, vm: VMKey(cloudService: "prod", name: "web"),
                      startedAt: h.clock.now(), owner: "host-c:42:1")
        let unknown = Job(id: Job.makeID(at: h.clock.now()), type: .backup, vm: VMKey(cloudService: "prod", name: "db"),
                          startedAt: h.clock.now(), owner: "host-d:7:1")
        #expect(try await h.catalog.insertJob(job, lock: "vm:prod/web") == nil)
        #expect(try await h.catalog.insertJob(unknown, lock: "vm:prod/db") == nil)
        try await coordinator.heartbeat(NodeAnnouncement(id: "node-b", address: "b:1", version: "t"), runningJobs: 0)
        #expect(await b.claimLeadership())
        #expect(await client.claimLeadership() == false)
        await b.tick()
        #expect(try await h.catalog.job(id: job.id)?.status == .inProgress, "the client heartbeats: its job runs")
        #expect(try await b.nodes().map(\.id) == ["node-b"], "a client is not a node")

        h.clock.advance(by: 3600 + 60)
        try await coordinator.heartbeat(NodeAnnouncement(id: "node-b", address: "b:1", version: "t"), runningJobs: 0)
        #expect(await b.claimLeadership())
        await b.tick()
        let ended = try #require(try await h.catalog.job(id: job.id))
        #expect(ended.status == .failed && ended.error?.code == .jobInterrupted)
        #expect(try await h.catalog.job(id: unknown.id)?.status == .inProgress,
                "a process that never heartbeated may still run: it is left alone")
    }
}
