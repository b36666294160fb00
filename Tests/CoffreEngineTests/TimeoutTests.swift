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
