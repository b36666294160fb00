import CoffreCore
import CoffreEngine
@testable import CoffreServer
import CoffreSystem
import Foundation
import Synchronization
import Testing

/// A store that stops answering (a slow disk, a held lock) stalls the operations that wait on
/// it, never the server: the store's work runs on threads of its own, not on Swift's
/// cooperative pool that answers every request.
@Suite struct StalledStoreTests {
    @Test func healthAndPointsAreAnsweredWhileStoreOperationsAreHeld() async throws {
        let harness = try await ServerHarness()
        // More stalled backups than the cooperative pool has threads: had any of them blocked
        // one of those threads, none would be left to answer.
        let stalled = ProcessInfo.processInfo.activeProcessorCount + 2
        let names = (0..<stalled).map { "vm\($0)" }
        for name in names { try harness.addVM(name) }
        try await harness.finish(try await harness.engine.discover().id)
        for job in await harness.engine.register(names).jobs { try await harness.finish(job.id) }
        try await harness.engine.createPolicy(Policy(name: "p", schedule: .daily(at: TimeOfDay(hour: 22, minute: 0)), retention: Retention(days: 7)))
        for job in await harness.engine.protect(names, policy: "p").jobs { try await harness.finish(job.id) }
        let first = try await harness.finish(try await harness.engine.backupNow("vm0").id)

        // Make the store stop answering, as a stalled disk or a lost network would: every backup
        // then waits when it registers its session. A watchdog thread lets go after two minutes,
        // so that a regression fails this test instead of hanging it.
        let hold = StoreHold(harness.store)
        hold.releaseEventually(after: 120)
        var jobs: [Job] = []
        for name in names { jobs.append(try await harness.engine.backupNow(name)) }
        for job in jobs {
            try await eventually("\(job.id) waits on the store") {
                try await harness.engine.job(job.id).steps.contains { $0.name == "Transfer data" && $0.status == .inProgress }
            }
        }
        #expect(hold.isHeld, "the watchdog let go while the backups were starting")

        try await harness.withLiveServer(as: .reader) { http in
            let health = try await http.call(.GET, "/healthz", anonymous: true)
            #expect(hold.isHeld, "/healthz was answered only once the store let go")
            #expect(health.status == .ok)
            let points = try await http.call(.GET, "/api/v1/vms/prod%2Fvm0/points")
            #expect(hold.isHeld, "the points were answered only once the store let go")
            #expect(points.status == .ok, "\(String(decoding: points.body, as: UTF8.self))")
            let view = try points.decode(PointsView.self)
            #expect(view.points.map(\.point.job) == [first.id])
            #expect(view.points.first?.blocksOnlyHere == 1, "the point's accounting is missing")
        }

        // Let go: every held backup goes on and succeeds.
        hold.release()
        for job in jobs { try await harness.finish(job.id) }
    }

    /// Waits (real time, bounded) until `condition` holds.
    func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
        for _ in 0..<1000 {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("timed out waiting until \(what)")
    }
}

/// Holds a `HeldStore`: while held, its session writes wait.
final class StoreHold: Sendable {
    private let store: HeldStore

    init(_ store: HeldStore) {
        self.store = store
        store.held.store(true, ordering: .releasing)
    }

    var isHeld: Bool { store.held.load(ordering: .acquiring) }

    func release() {
        store.held.store(false, ordering: .releasing)
    }

    /// Lets go after `seconds` on a thread of its own, whatever the cooperative pool does.
    func releaseEventually(after seconds: Double) {
        Thread.detachNewThread { [self] in
            Monotonic.sleep(seconds)
            release()
        }
    }
}

/// A store whose writes of session records wait while `held` is set (a stalled disk, as the
/// vault's callers see it).
final class HeldStore: ChunkStore {
    let inner: any ChunkStore
    let held = Atomic<Bool>(false)

    init(_ inner: any ChunkStore) {
        self.inner = inner
    }

    var location: String { inner.location }

    func put(_ key: String, _ bytes: [UInt8], mode: PutMode, durability: Durability) throws -> Bool {
        while key.hasPrefix("sessions/") && held.load(ordering: .acquiring) { Monotonic.sleep(0.01) }
        return try inner.put(key, bytes, mode: mode, durability: durability)
    }

    func get(_ key: String, range: Range<Int64>?) throws -> [UInt8]? { try inner.get(key, range: range) }
    func list(prefix: String) throws -> [StoredObject] { try inner.list(prefix: prefix) }
    func delete(_ keys: [String]) throws { try inner.delete(keys) }
    func persist() throws { try inner.persist() }
}
