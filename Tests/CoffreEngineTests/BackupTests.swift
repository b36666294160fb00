import CoffreCore
import CoffreEngine
import CoffreTesting
import Foundation
import Testing

/// SPEC section 4: backup.
@Suite struct BackupTests {
    @Test func B1_prepareSnapshotReleaseThenCopyAndTheGuestIsReleasedEvenWhenTheSnapshotFails() async throws {
        let h = try await Harness { $0.snapshotTimeout = .milliseconds(300) }
        let key = try h.addVM("web01")
        try h.write(key, at: 0, pattern(40_000, seed: 1))
        try await h.protect(["web01"])
        let point = try await h.backup("web01")
        let order = h.fabric.events.filter { ["prepare", "snapshot", "release", "read", "deleteSnapshot"].contains($0) }
        #expect(order == ["prepare", "snapshot", "release", "read", "deleteSnapshot"])
        #expect(point.consistency == .applicationConsistent)
        #expect(point.guest.freezeDurationMilliseconds == 42)
        #expect(point.guest.scripts.map(\.phase) == [.pre, .post])
        #expect(h.fabric.guest(key).calls.count == 2)

        // The snapshot times out: the guest is still released, and no point exists.
        h.fabric.set { $0.snapshotDelay = .seconds(30) }
        let failed = try await h.finish(try await h.engine.backupNow("web01"))
        #expect(failed.status == .failed)
        expectError(failed.error, .snapshotTimeout(key, seconds: 0.3))
        #expect(h.fabric.guest(key).calls.last == "release \(failed.id)")
        #expect(try await h.catalog.points(item: point.item).count == 1)
    }

    @Test func B1_consistencyRecordsWhatActuallyHappened() async throws {
        let h = try await Harness()
        let up = try h.addVM("up")
        try h.addVM("down")
        let quiet = try h.addVM("quiet")
        try h.addVM("noagent")
        try await h.protect(["up", "down", "quiet", "noagent"])
        h.fabric.guest(up).behavior = .unreachable
        h.fabric.guest(quiet).behavior = .preScriptFailsAndContinues(ErrorInfo(code: .preScriptExecutionFailed, message: "pre-script exited 1"))
        try h.edit(VMKey(cloudService: "prod", name: "down")) { $0["powerState"] = "stopped" }
        #expect(try await h.backup("up").consistency == .crashConsistent)
        let stopped = try await h.backup("down")
        #expect(stopped.consistency == .crashConsistent)
        #expect(stopped.guest.reason.contains("stopped"))
        let downgraded = try await h.backup("quiet")
        #expect(downgraded.consistency == .fileSystemConsistent)
        #expect(downgraded.guest.errors.map(\.code) == [.preScriptExecutionFailed])
        // continueBackupOnFailure=false on a multi-disk VM: the agent refuses and the job fails.
        h.fabric.guest(quiet).behavior = .refuses(ErrorInfo(code: .preScriptExecutionFailed, message: "pre-script exited 1", workaround: "fix it"))
        let refused = try await h.finish(try await h.engine.backupNow("quiet"))
        #expect(refused.status == .failed)
        #expect(refused.error?.code == .preScriptExecutionFailed)
        // The same for a post-script: release says the backup must fail; no point, no snapshot left.
        let before = try await h.catalog.points(item: try #require(try await h.catalog.item(for: quiet)).id).count
        h.fabric.guest(quiet).behavior = .postScriptRefuses(ErrorInfo(code: .postScriptExecutionFailed, message: "post-script exited 1", workaround: "fix it"))
        let refusedAfter = try await h.finish(try await h.engine.backupNow("quiet"))
        #expect(refusedAfter.status == .failed)
        #expect(refusedAfter.error?.code == .postScriptExecutionFailed)
        #expect(try await h.catalog.points(item: try #require(try await h.catalog.item(for: quiet)).id).count == before)
        #expect(h.fabric.get(\.liveSnapshots).isEmpty)
        // The VM agent vanished: the seed's "install the VM agent first".
        try h.edit(VMKey(cloudService: "prod", name: "noagent")) { $0.removeValue(forKey: "agentVersion") }
        let noAgent = try await h.finish(try await h.engine.backupNow("noagent"))
        expectError(noAgent.error, .extensionInstallFailed(VMKey(cloudService: "prod", name: "noagent")))
    }

    @Test func B2_allDisksOfAVMAreCopiedInParallel() async throws {
        let h = try await Harness()
        let key = try h.addVM("wide", disks: [1 << 20, 1 << 20, 1 << 20, 1 << 20])
        for (index, disk) in ["os.img", "data1.img", "data2.img", "data3.img"].enumerated() {
            try h.write(key, disk, at: 0, pattern(200_000, seed: UInt64(index)))
        }
        try await h.protect(["wide"])
        h.fabric.set { $0.awaitConcurrentDisks = 2 }
        let point = try await h.backup("wide")
        #expect(point.disks.count == 4)
        #expect(h.fabric.get(\.maxConcurrentDisks) >= 2)
    }

    @Test func B3_onlyChangedBlocksAreTransferredAndStored() async throws {
        let h = try await Harness()  // 16 KiB blocks
        let key = try h.addVM("web01", disks: [1 << 20])
        try h.write(key, at: 0, pattern(1 << 20, seed: 3))
        try await h.protect(["web01"])
        let full = try await h.backup("web01")
        #expect(full.stats.blocksAdded == 64)
        try h.write(key, at: 5 * 16_384 + 100, pattern(1024, seed: 4))  // 1 KiB inside block 5
        let incremental = try await h.backup("web01")
        #expect(incremental.stats.blocksChanged == 1)
        #expect(incremental.stats.blocksAdded == 1)
        #expect(try await h.restore("web01", incremental.id) == h.disks(of: key))
    }

    @Test func B3_withChangedBlockTrackingOnlyTheWrittenBlocksAreReadAndAChainBreakIsARecordedResync() async throws {
        let h = try await Harness()  // 16 KiB blocks
        h.fabric.set { $0.tracking = true }
        let key = try h.addVM("web01", disks: [1 << 20])
        try h.write(key, at: 0, pattern(1 << 20, seed: 3))
        try await h.protect(["web01"])
        let full = try await h.backup("web01")
        #expect(full.changes == ChangeTracking(token: full.changes?.token, changedOnlyDisks: 0, resyncReason: nil))
        #expect(full.changes?.token != nil)

        // The guest writes 1 KiB inside block 5 and 20 KiB across blocks 40–41.
        try h.write(key, at: 5 * 16_384 + 100, pattern(1024, seed: 4))
        try h.write(key, at: 40 * 16_384 + 8192, pattern(20_480, seed: 5))
        h.fabric.set { $0.writes["os.img"] = [(5 * 16_384 + 100)..<(5 * 16_384 + 1124), (40 * 16_384 + 8192)..<(40 * 16_384 + 28_672)] }
        let incremental = try await h.backup("web01")
        #expect(h.fabric.get(\.sinceSeen).last == ChangeBase(point: full.id, token: full.changes!.token!))
        #expect(incremental.changes?.changedOnlyDisks == 1 && incremental.changes?.resyncReason == nil)
        #expect(incremental.stats.bytesRead == 3 * 16_384)  // blocks 5, 40, 41 of a 64-block disk
        #expect(try await h.restore("web01", incremental.id) == h.disks(of: key))

        // The checkpoint is lost (metadata deleted): a full read, deduplicated, with the reason on the point.
        h.fabric.set { $0.checkpoints.removeAll() }
        try h.write(key, at: 0, pattern(512, seed: 6))
        let resynced = try await h.backup("web01")
        #expect(resynced.changes?.resyncReason?.contains("missing") == true)
        #expect(resynced.changes?.changedOnlyDisks == 0)
        #expect(resynced.stats.bytesRead == 1 << 20)
        #expect(resynced.stats.blocksAdded == 1)
        let job = try await h.engine.job(resynced.job)
        #expect(job.details["resyncReason"] == resynced.changes?.resyncReason)
        #expect(try await h.restore("web01", resynced.id) == h.disks(of: key))
        #expect(try await h.restore("web01", full.id)["os.img"] != h.disks(of: key)["os.img"])
    }

    @Test func B3_theEngineNamesTheBaseOnceAndTheStoreSaysWhyItReadInFull() async throws {
        let h = try await Harness()
        h.fabric.set { $0.tracking = true }
        let key = try h.addVM("web01", disks: [1 << 20])
        try h.write(key, at: 0, pattern(1 << 20, seed: 7))
        try await h.protect(["web01"])
        let full = try await h.backup("web01")
        // The vault no longer has the point the catalog and the fabric count from.
        try h.vault.expire(full.id)
        h.fabric.set { $0.writes["os.img"] = [0..<512] }
        try h.write(key, at: 0, pattern(512, seed: 8))
        let next = try await h.backup("web01")
        #expect(h.fabric.get(\.sinceSeen).last == ChangeBase(point: full.id, token: full.changes!.token!))
        #expect(next.changes?.changedOnlyDisks == 0)
        #expect(next.changes?.resyncReason?.contains(full.id) == true, "\(String(describing: next.changes))")
        #expect(next.stats.bytesRead == 1 << 20)
        // The point's time is the engine's (its clock), the same in the catalog and the store.
        let stored = try #require(try h.vault.points(item: next.item).last)
        #expect(stored.id == next.id && stored.time == next.takenAt)
        #expect(try await h.restore("web01", next.id) == h.disks(of: key))
    }

    @Test func B4_thePointExistsOnlyAfterTheSnapshotIsDeletedAndAFailedJobLeavesNothing() async throws {
        let h = try await Harness()
        let key = try h.addVM("web01")
        try h.write(key, at: 0, pattern(100_000, seed: 5))
        try await h.protect(["web01"])
        let job = try await h.succeed(try await h.engine.backupNow("web01"))
        let names = job.steps.map(\.name)
        #expect(names.firstIndex(of: "Delete snapshot")! < names.firstIndex(of: "Commit recovery point")!)
        #expect(h.fabric.get(\.liveSnapshots).isEmpty)

        h.fabric.set { $0.failReads = true }
        let failed = try await h.finish(try await h.engine.backupNow("web01"))
        #expect(failed.status == .failed)
        #expect(failed.error?.code == .backupInternalError)
        #expect(h.fabric.get(\.liveSnapshots).isEmpty)
        let item = try #require(try await h.catalog.item(for: key))
        #expect(try await h.catalog.points(item: item.id).count == 1)
        #expect(try h.vault.points(item: item.id).count == 1)
        #expect(!FileManager.default.fileExists(atPath: h.fabric.root + "/.coffre-snapshots/" + failed.id))
    }

    @Test func B4_aPointsIdAndItsTakenAtAreTheSnapshotsInstantHoweverLongTheCopyTakes() async throws {
        let h = try await Harness()
        let key = try h.addVM("web01")
        try h.write(key, at: 0, pattern(40_000, seed: 9))
        try await h.protect(["web01"])
        let snapshotTime = h.clock.now()
        h.fabric.set { $0.holdReads = true }
        let job = try await h.engine.backupNow("web01")
        try await h.eventually("the copy to start") { h.fabric.events.contains("read") }
        h.clock.advance(by: 7)  // the copy takes 7 s
        h.fabric.set { $0.holdReads = false }
        let done = try await h.succeed(job)
        let id = try #require(done.details["point"])
        let point = try #require(try await h.catalog.point(id: id))
        #expect(point.takenAt == snapshotTime)
        #expect(point.id.hasPrefix("rp-\(compactTimestamp(snapshotTime))-"), "\(point.id) taken at \(Engine.instant(point.takenAt))")
    }

    @Test func B1_aSnapshotThatCopiedNothingHasNoByteCountOnItsStep() async throws {
        let h = try await Harness()
        let stopped = try h.addVM("db01")
        try h.write(stopped, at: 0, pattern(40_000, seed: 10))
        try await h.protect(["db01"])
        try h.edit(stopped) { $0["powerState"] = "stopped" }
        let job = try await h.succeed(try await h.engine.backupNow("db01"))
        let step = try #require(job.steps.first { $0.name == "Take snapshot" })
        #expect(step.bytes == nil, "\(step)")
        #expect(step.detail?.contains("stopped") == true)
        // A running VM's disks are copied (this file system cannot reflink) or cloned: bytes only when copied.
        _ = try h.addVM("web01")
        try await h.protect(["web01"])
        let running = try await h.succeed(try await h.engine.backupNow("web01"))
        let copied = try #require(running.steps.first { $0.name == "Take snapshot" })
        #expect(copied.bytes.map { $0 > 0 } ?? true, "\(copied)")
    }

    @Test func B5_onDemandBackupFullThenIncrementalWithItsOwnRetentionDate() async throws {
        let h = try await Harness()
        let key = try h.addVM("web01")
        try h.write(key, at: 0, pattern(300_000, seed: 6))
        try await h.protect(["web01"])
        let until = h.clock.now().addingTimeInterval(90 * 86_400)
        let first = try await h.backup("web01", retainUntil: until)
        #expect(first.type == .onDemand)
        #expect(first.expiresAt == until)
        #expect(first.retainUntil == until)
        #expect(first.stats.blocksAdded > 0)
        let second = try await h.backup("web01")
        #expect(second.stats.blocksAdded == 0)  // incremental: nothing changed
        #expect(second.expiresAt == h.clock.now().addingTimeInterval(30 * 86_400))
        await expectThrows(.invalidRetainUntil(Engine.instant(h.clock.now()))) {
            _ = try await h.engine.backupNow("web01", retainUntil: h.clock.now())
        }
        let unprotected = try h.addVM("loose")
        try await h.discover()
        await expectThrows(.notProtected(unprotected)) { _ = try await h.engine.backupNow("loose") }
    }

    @Test func B6_oneOperationPerItemAtATime() async throws {
        let h = try await Harness()
        let key = try h.addVM("web01")
        try h.write(key, at: 0, pattern(100_000, seed: 7))
        try await h.protect(["web01"])
        let point = try await h.backup("web01")
        h.fabric.set { $0.holdReads = true }
        let running = try await h.engine.backupNow("web01")
        try await h.eventually("transfer started") { h.fabric.events.filter { $0 == "read" }.count >= 2 }
        await expectThrows(.anotherOperationInProgress(key, job: running.id)) { _ = try await h.engine.backupNow("web01") }
        await expectThrows(.anotherOperationInProgress(key, job: running.id)) {
            _ = try await h.engine.restore("web01", point: point.id, to: .folder(h.folder + "/r"))
        }
        h.fabric.set { $0.holdReads = false }
        try await h.succeed(running)
        _ = try await h.backup("web01")  // free again
        let message = CoffreError.anotherOperationInProgress(key, job: running.id).message
        #expect(message.contains("another operation is in progress on this item"))
    }

    @Test func B7_cancellingARunningBackupLeavesNoPointAndNoData() async throws {
        let h = try await Harness()
        let key = try h.addVM("web01", disks: [2 << 20, 2 << 20])
        try h.write(key, at: 0, pattern(2 << 20, seed: 8))
        try h.write(key, "data1.img", at: 0, pattern(2 << 20, seed: 9))
        try await h.protect(["web01"])
        h.fabric.set { $0.holdReads = true }
        let job = try await h.engine.backupNow("web01")
        try await h.eventually("transfer started") { h.fabric.events.contains("read") }
        let asked = try await h.engine.cancel(jobID: job.id)
        #expect(asked.cancelRequested)
        h.fabric.set { $0.holdReads = false }
        let final = try await h.finish(job)
        #expect(final.status == .cancelled)
        expectError(final.error, .cancelled())
        let item = try #require(try await h.catalog.item(for: key))
        #expect(try await h.catalog.points(item: item.id).isEmpty)
        #expect(try h.vault.points().isEmpty)
        #expect(try h.vault.stats().storedChunks == 0)
        #expect(h.fabric.get(\.liveSnapshots).isEmpty)
        #expect(h.fabric.guest(key).calls.last == "release \(job.id)")
        await expectThrows(.jobNotRunning(job.id, status: "Cancelled")) { try await h.engine.cancel(jobID: job.id) }
        _ = try await h.backup("web01")  // not stuck busy
    }
}
