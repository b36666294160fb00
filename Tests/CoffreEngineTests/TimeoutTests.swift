import CoffreCore
@testable import CoffreEngine
import CoffreTesting
import Foundation
import Synchronization
import Testing

/// What a timeout leaves behind: nothing, even when the work it gave up on finishes anyway.
@Suite struct TimeoutTests {
    @Test func aSnapshotThatArrivesAfterItsTimeoutIsDeleted() async throws {
        let h = try await Harness { $0.snapshotTimeout = .milliseconds(200) }
        let key = try await h.protectedVM("web01")
        h.fabric.set { $0.lateSnapshot = .milliseconds(700) }
        let failed = try await h.finish(try await h.engine.backupNow("web01"))
        #expect(failed.status == .failed)
        #expect(failed.error?.code == .snapshotTimeout)
        // The snapshot was taken after the job gave up on it, and deleted by the job.
        let events = h.fabric.events
        let taken = try #require(events.firstIndex(of: "lateSnapshotTaken"), "\(events)")
        #expect(events[taken...].contains("deleteSnapshot"), "\(events)")
        #expect(h.fabric.get(\.liveSnapshots).isEmpty)
        // Its copies of the disks are gone from the fabric's folder.
        let snapshots = h.fabric.root + "/.coffre-snapshots"
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: snapshots)) ?? []).isEmpty)
        #expect(h.fabric.guest(key).calls.last == "release \(failed.id)")
    }

    @Test func aLateValueGoesToTheDiscardAndTheTimeoutIsThrown() async throws {
        let discarded = Mutex<[Int]>([])
        await #expect(throws: CoffreError.self) {
            try await withTimeout(.milliseconds(50), error: { CoffreError(.snapshotTimeout, "too slow") },
                                  discardingLate: { value in discarded.withLock { $0.append(value) } }) {
                // Ignores cancellation, as a hypervisor call does.
                await Task.detached { try? await Task.sleep(for: .milliseconds(300)) }.value
                return 7
            }
        }
        #expect(discarded.withLock { $0 } == [7])
        // In time: the value is returned, nothing is discarded.
        let value = try await withTimeout(.seconds(30), error: { CoffreError(.snapshotTimeout, "too slow") },
                                          discardingLate: { value in discarded.withLock { $0.append(value) } }) { 8 }
        #expect(value == 8)
        #expect(discarded.withLock { $0 } == [7])
    }

    @Test func aValueThatArrivesAfterTheCallerWasCancelledGoesToTheDiscard() async throws {
        // A backup's transfer cancelled (SIGTERM) just as the store commits its point: the point
        // comes back after the caller's cancellation and must be undone, not dropped.
        let discarded = Mutex<[Int]>([])
        let started = Mutex(false)
        let caller = Task {
            try await withTimeout(.seconds(3600), error: { CoffreError(.backupCopyTimeout, "too slow") },
                                  discardingLate: { value in discarded.withLock { $0.append(value) } }) {
                started.withLock { $0 = true }
                await Task.detached { try? await Task.sleep(for: .milliseconds(300)) }.value
                return 9
            }
        }
        while !started.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        caller.cancel()
        await #expect(throws: CancellationError.self) { try await caller.value }
        #expect(discarded.withLock { $0 } == [9])
    }

    @Test func aBackupWhoseReadsAreHeldDoesNotHoldUpAnother() async throws {
        // Two fabrics: every read of the first one's disks waits (a stalled disk), eight backups
        // of its VMs hold sixteen workers there, and the second fabric's VM is backed up
        // meanwhile. On Dispatch's shared pool that backup waited about 8 s for a thread (the
        // whole test: 8.6–9.5 s; with workers of their own: 0.9–1.2 s).
        let h = try await Harness(fabricCount: 2) { $0.maxConcurrentBackups = 16 }
        let heldNames = (0..<8).map { "held\($0)" }
        for name in heldNames {
            let key = try h.addVM(name, disks: Array(repeating: 1 << 20, count: 4))
            try h.write(key, at: 0, pattern(40_000, seed: 5))
        }
        let free = try h.addVM("free", fabric: 1)
        try h.write(free, at: 0, pattern(40_000, seed: 6), fabric: 1)
        try await h.protect(heldNames + ["free"])
        h.fabrics[0].set { $0.holdReads = true }
        // A regression must fail this test, not hang it: a thread of its own lets the reads go
        // after a minute and says so.
        let watchdog = Mutex(false)
        Thread.detachNewThread { [fabric = h.fabrics[0]] in
            Thread.sleep(forTimeInterval: 60)
            if fabric.get(\.holdReads) {
                watchdog.withLock { $0 = true }
                fabric.set { $0.holdReads = false }
            }
        }
        var stalledJobs: [Job] = []
        for name in heldNames { stalledJobs.append(try await h.engine.backupNow(name)) }
        let stalled = stalledJobs[0]
        try await h.eventually("the held backup reads") { h.fabrics[0].events.contains("read") }
        // Answered while the other one's reads are still held.
        let point = try await h.backup("free")
        #expect(!watchdog.withLock { $0 }, "the backup waited until the other one's reads were let go")
        #expect(try await h.engine.job(stalled.id).status == .inProgress, "the held backup ended before the other one")
        h.fabrics[0].set { $0.holdReads = false }
        for job in stalledJobs { try await h.succeed(job) }
        #expect(try await h.restore("free", point.id) == h.disks(of: free, fabric: 1))
    }

    @Test func startRunsOnceHoweverOftenItIsCalled() async throws {
        // The harness starts its engine once, as the CLI starts the engine it assembles.
        let h = try await Harness { $0.tickInterval = .milliseconds(20) }
        #expect(h.fabric.get(\.regionReads) == 1)
        try h.addVM("web01")
        try await h.protect(["web01"])
        async let second: Void = h.engine.start()
        async let third: Void = h.engine.start()
        _ = try await (second, third)
        // `coffre serve` then runs it, and run() starts it too.
        let running = Task { try await h.engine.run() }
        // A scheduled backup shows that run() went past its start() and ticked.
        h.clock.advance(by: 2 * 86_400)
        try await h.eventually("a scheduled backup") { h.fabric.events.contains("snapshot") }
        running.cancel()
        _ = await running.result
        #expect(h.fabric.get(\.regionReads) == 1, "the fabrics were recorded again")
    }
}
