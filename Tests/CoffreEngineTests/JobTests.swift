import CoffreCore
import CoffreEngine
import CoffreTesting
import Foundation
import Testing

/// SPEC section 9: dashboard, jobs and errors.
@Suite struct JobTests {
    @Test func J1_dashboardCountsProtectedVMsAndTheLast24HoursOfJobs() async throws {
        let h = try await Harness()
        try h.addVM("a")
        try h.addVM("b")
        try h.addVM("off", power: "stopped")
        try await h.protect(["a", "b"])
        _ = try await h.finish(try #require(await h.engine.register(["off"]).jobs.first))  // fails: not running
        var board = try await h.engine.dashboard()
        #expect(board.protectedVMs == 2)
        #expect(board.pendingInitialBackup == 2)
        // discovery + 2 register + 2 configure protection succeeded; 1 register failed
        #expect(board.jobsSucceeded == 5)
        #expect(board.jobsFailed == 1)
        #expect(board.jobsInProgress == 0)
        h.fabric.set { $0.holdReads = true }
        try h.write(VMKey(cloudService: "prod", name: "a"), at: 0, pattern(50_000, seed: 1))
        let running = try await h.engine.backupNow("a")
        try await h.eventually("backup running") { h.fabric.events.contains("read") }
        board = try await h.engine.dashboard()
        #expect(board.jobsInProgress == 1)
        h.fabric.set { $0.holdReads = false }
        try await h.succeed(running)
        // A day later the old jobs no longer count.
        h.clock.advance(by: 25 * 3600)
        _ = try await h.backup("b")
        board = try await h.engine.dashboard()
        #expect(board.jobsSucceeded == 1)
        #expect(board.jobsFailed == 0)
        #expect(board.pendingInitialBackup == 0)
    }

    @Test func J2_jobsFilterByTypeStatusItemAndTimeAndShowStepsBytesAndErrors() async throws {
        let h = try await Harness()
        let a = try h.addVM("a")
        try h.addVM("off", power: "stopped")
        try h.write(a, at: 0, pattern(200_000, seed: 2))
        try await h.protect(["a"])
        h.clock.advance(by: 3600)
        let backup = try await h.succeed(try await h.engine.backupNow("a"))
        let failed = try await h.finish(try #require(await h.engine.register(["off"]).jobs.first))

        #expect(try await h.engine.jobs(JobFilter(type: .backup)).map(\.id) == [backup.id])
        #expect(try await h.engine.jobs(JobFilter(status: .failed)).map(\.id) == [failed.id])
        #expect(try await h.engine.jobs(JobFilter(vm: a)).count == 3)  // register, protect, backup
        #expect(try await h.engine.jobs(JobFilter(since: h.clock.now().addingTimeInterval(-60))).count == 2)
        #expect(try await h.engine.jobs(JobFilter(limit: 1)).count == 1)

        #expect(backup.steps.map(\.name) == ["Check VM", "Prepare guest", "Take snapshot", "Release guest",
                                             "Transfer data", "Delete snapshot", "Commit recovery point"])
        #expect(backup.steps.allSatisfy { $0.status == .succeeded && $0.endedAt != nil })
        let transfer = try #require(backup.steps.first { $0.name == "Transfer data" })
        #expect((transfer.bytes ?? 0) > 0)
        #expect(backup.progress.readBytes >= 200_000)
        #expect(backup.progress.scannedBytes == backup.progress.totalBytes)
        #expect(failed.error?.code == .vmNotRunning)
        #expect(failed.error?.workaround != nil)
        #expect(failed.steps.first?.status == .failed)
    }

    @Test func J3_everyBackupErrorOfSeed000IsACodeWithMessageAndWorkaround() async throws {
        let h = try await Harness {
            $0.copyTimeout = .milliseconds(300)
        }
        let key = try h.addVM("web01")
        try h.write(key, at: 0, pattern(200_000, seed: 3))
        try await h.protect(["web01"])

        // Copying takes too long.
        // Reads are slow rather than held: a worker thread cannot see the cancellation mid-read.
        h.fabric.set { $0.readDelay = .milliseconds(400) }
        let slow = try await h.finish(try await h.engine.backupNow("web01"))
        h.fabric.set { $0.readDelay = nil }
        expectError(slow.error, .backupCopyTimeout(key, seconds: 0.3))
        #expect(slow.error?.workaround?.contains("too much data") == true)
        // The rest runs with the default copy limit: 300 ms is no budget for a backup while the
        // whole suite runs (publishing waits for the file system's other writers, syncfs).
        try await h.reconfigure()

        // An unexpected failure while copying.
        h.fabric.set { $0.failReads = true }
        let broken = try await h.finish(try await h.engine.backupNow("web01"))
        h.fabric.set { $0.failReads = false }
        #expect(broken.error?.code == .backupInternalError)
        #expect(broken.error?.workaround?.contains("--retain-data") == true)

        // The rest of the table is triggered elsewhere: SnapshotTimeout (B1), ExtensionInstallFailed
        // (B1), AnotherOperationInProgress (B6, R4), discovery (D2, D3), registration (R4).
        let table: [CoffreError] = [
            .discoveryInternalError(fabric: "f", detail: "d"), .discoveryInProgress(),
            .vmNotRunning(key), .tooManyDataDisks(key, count: 6, limit: 5), .unsupportedConfiguration(key, features: ["x"]),
            .vmAgentNotFound(key, minimum: "1.0"), .extensionInstallTimeout(key, seconds: 1),
            .anotherOperationInProgress(key, job: "j"), .backupCopyTimeout(key, seconds: 1), .snapshotTimeout(key, seconds: 1),
            .backupInternalError(key, detail: "d"), .extensionInstallFailed(key),
        ]
        #expect(Set(table.map(\.code)).count == table.count)
        for error in table where error.code != .discoveryInProgress && error.code != .tooManyDataDisks {
            #expect(error.workaround?.isEmpty == false, "\(error.code)")
        }
        // Nothing of the failed jobs is visible; the next backup works.
        let item = try #require(try await h.catalog.item(for: key))
        #expect(try await h.catalog.points(item: item.id).isEmpty)
        #expect(try h.vault.points().isEmpty)
        _ = try await h.backup("web01")
    }
}
