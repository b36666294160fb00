import CoffreCore
@testable import CoffreEngine
import CoffreTesting
import Foundation
import Testing

/// The job queue: backups wait queued beyond a node's or a fabric's limit, a queued job can be
/// cancelled, a job whose lease is lost commits nothing, and orphan cleanup never removes what
/// a running backup is about to commit.
@Suite struct QueueTests {
    @Test func backupsBeyondTheNodesLimitWaitQueuedAndStartAsPlacesFree() async throws {
        let h = try await Harness { $0.maxConcurrentBackups = 2 }
        let names = (0..<5).map { "vm\($0)" }
        for name in names { try h.write(try h.addVM(name), at: 0, pattern(40_000, seed: 3)) }
        try await h.protect(names)
        h.fabric.set { $0.holdReads = true }
        var jobs: [Job] = []
        for name in names { jobs.append(try await h.engine.backupNow(name)) }
        #expect(jobs.map(\.status) == [.inProgress, .inProgress, .queued, .queued, .queued])
        #expect(try await h.catalog.jobs(JobFilter(status: .queued)).count == 3)
        // A second request for a VM whose backup waits is refused, as for a running one (B6).
        await expectThrows(.anotherOperationInProgress(jobs[4].vm!, job: jobs[4].id)) {
            _ = try await h.engine.backupNow("vm4")
        }
        #expect(h.engine.runningJobIDs.count == 2)
        h.fabric.set { $0.holdReads = false }
        for job in jobs {
            let final = try await h.succeed(job)
            #expect(final.details["claimedAt"] != nil)
            #expect(h.engine.runningJobIDs.count <= 2)
        }
        #expect(try await h.catalog.jobs(JobFilter(status: .queued)).isEmpty)
    }

    @Test func aFabricAtItsLimitHoldsItsBackupsButNotAnotherFabrics() async throws {
        let h = try await Harness(fabricCount: 2) { $0.fabricBackupLimits = ["fabric0": 1] }
        let held = ["a", "b", "c"]
        for name in held { try h.write(try h.addVM(name), at: 0, pattern(40_000, seed: 4)) }
        let other = try h.addVM("other", fabric: 1)
        try h.write(other, at: 0, pattern(40_000, seed: 5), fabric: 1)
        try await h.protect(held + ["other"])
        h.fabrics[0].set { $0.holdReads = true }
        var jobs: [Job] = []
        for name in held { jobs.append(try await h.engine.backupNow(name)) }
        #expect(jobs.map(\.status) == [.inProgress, .queued, .queued])
        // Queued behind fabric0's backups, yet not held up by them.
        let point = try await h.backup("other")
        #expect(point.vm == other)
        #expect(try await h.catalog.job(id: jobs[1].id)?.status == .queued)
        h.fabrics[0].set { $0.holdReads = false }
        for job in jobs { try await h.succeed(job) }
    }

    @Test func aQueuedJobCancelledNeverRuns() async throws {
        let h = try await Harness { $0.maxConcurrentBackups = 1 }
        for name in ["first", "second"] { try h.write(try h.addVM(name), at: 0, pattern(40_000, seed: 6)) }
        try await h.protect(["first", "second"])
        h.fabric.set { $0.holdReads = true }
        let first = try await h.engine.backupNow("first")
        let second = try await h.engine.backupNow("second")
        #expect(second.status == .queued)
        let cancelled = try await h.engine.cancel(jobID: second.id)
        #expect(cancelled.status == .cancelled)
        #expect(cancelled.error?.code == .cancelled)
        await expectThrows(.jobNotRunning(second.id, status: "Cancelled")) { _ = try await h.engine.cancel(jobID: second.id) }
        h.fabric.set { $0.holdReads = false }
        try await h.succeed(first)
        let final = try #require(try await h.catalog.job(id: second.id))
        #expect(final.status == .cancelled)
        #expect(final.steps.isEmpty, "a cancelled queued job never ran")
        let secondVM = try #require(second.vm)
        let item = try #require(try await h.catalog.item(for: secondVM))
        #expect(try await h.catalog.points(item: item.id).isEmpty)
        // The item is free again.
        try await h.succeed(try await h.engine.backupNow("second"))
    }

    @Test func aJobWhoseLeaseIsLostStopsAndCommitsNothing() async throws {
        let h = try await Harness()
        let key = try h.addVM("web01")
        try h.write(key, at: 0, pattern(40_000, seed: 7))
        try await h.protect(["web01"])
        h.fabric.set { $0.holdReads = true }
        let job = try await h.engine.backupNow("web01")
        try await h.eventually("the backup reads") { h.fabric.events.contains("read") }
        // Another node took this one for dead and ended the job, as recovery does.
        var ended = try #require(try await h.catalog.job(id: job.id))
        ended.status = .failed
        ended.endedAt = h.clock.now()
        ended.error = ErrorInfo(CoffreError.jobInterrupted(job.id))
        try await h.catalog.updateJob(ended)
        h.fabric.set { $0.holdReads = false }
        try await h.eventually("the job stops") { h.engine.runningJobIDs.isEmpty }
        let stored = try #require(try await h.catalog.job(id: job.id))
        #expect(stored.error?.code == .jobInterrupted, "the new owner's record stands")
        let item = try #require(try await h.catalog.item(for: key))
        #expect(try await h.catalog.points(item: item.id).isEmpty)
        try await h.engine.expireOrphans()
        #expect(try await h.engine.store.storedPoints(item: item.id).isEmpty)
        // A commit under a lost lease is refused by the catalog itself.
        await expectThrows(.jobLeaseLost(job.id)) {
            try await h.catalog.commitPoint(
                RecoveryPointRecord(id: "rp-late", item: item.id, vm: key, takenAt: h.clock.now(), type: .onDemand,
                                    consistency: .crashConsistent, expiresAt: nil, disks: [], stats: PointStats(),
                                    guest: GuestOutcome(reason: "test"), job: job.id),
                item: item, job: job)
        }
    }

    /// Decision 0025: orphan cleanup running over and over while backups run must never
    /// expire a point those backups commit.
    @Test func orphanCleanupNeverExpiresAPointThatIsBeingCommitted() async throws {
        let h = try await Harness()
        let names = (0..<3).map { "vm\($0)" }
        var keys: [VMKey] = []
        for name in names {
            let key = try h.addVM(name)
            try h.write(key, at: 0, pattern(60_000, seed: 8))
            keys.append(key)
        }
        try await h.protect(names)
        for round in 0..<8 {
            h.clock.advance(by: 60)
            for key in keys { try h.write(key, at: Int64(round * 4096), pattern(4096, seed: UInt64(round + 10))) }
            var jobs: [Job] = []
            for name in names { jobs.append(try await h.engine.backupNow(name)) }
            let cleaner = Task {
                while !Task.isCancelled { try? await h.engine.expireOrphans() }
            }
            for job in jobs { try await h.succeed(job) }
            cleaner.cancel()
            _ = await cleaner.value
        }
        for key in keys {
            let item = try #require(try await h.catalog.item(for: key))
            let committed = try await h.catalog.points(item: item.id).map(\.id)
            let stored = Set(try await h.engine.store.storedPoints(item: item.id).map(\.id))
            #expect(committed.count == 8)
            #expect(committed.allSatisfy(stored.contains), "a committed point lost its data")
        }
        let firstItem = try #require(try await h.catalog.item(for: keys[0]))
        let last = try #require(try await h.catalog.points(item: firstItem.id).last)
        let restored = try await h.restore(names[0], last.id) == h.disks(of: keys[0])
        #expect(restored, "the newest point restores the disk as it is")
    }

    /// The rule decision 0025 rests on, step by step: a point stored but not committed is left
    /// alone while a job of its item runs, can be committed by that job, and is expired once no
    /// job of the item runs.
    @Test func anUncommittedPointIsKeptWhileItsItemsJobRunsAndExpiredOnceNoneDoes() async throws {
        let h = try await Harness()
        let key = try await h.protectedVM("web01")
        let item = try #require(try await h.catalog.item(for: key))
        let running = Job(id: "job-running", type: .backup, status: .inProgress, vm: key, startedAt: h.clock.now(), owner: "test")
        #expect(try await h.catalog.insertJob(running, lock: Engine.itemLock(key)) == nil)
        func storeAPoint(_ seed: UInt64) async throws -> StoredPoint {
            try await h.engine.store.backupPoint(BackupRequest(
                item: item.id, disks: [MemoryBlockDevice(name: "os.img", bytes: pattern(64 << 10, seed: seed))],
                base: nil, time: h.clock.now()), progress: nil)
        }
        let kept = try await storeAPoint(20)
        try await h.engine.expireOrphans()
        #expect(try await h.engine.store.storedPoints(item: item.id).map(\.id) == [kept.id], "its job still runs")
        try await h.catalog.commitPoint(
            RecoveryPointRecord(id: kept.id, item: item.id, vm: key, takenAt: h.clock.now(), type: .onDemand,
                                consistency: .crashConsistent, expiresAt: nil,
                                disks: [VirtualDisk(name: "os.img", size: 64 << 10, isOSDisk: true)], stats: PointStats(),
                                guest: GuestOutcome(reason: "test"), job: running.id),
            item: item, job: running)
        var ended = running
        ended.status = .failed
        try await h.catalog.updateJob(ended)
        let orphan = try await storeAPoint(21)
        try await h.engine.expireOrphans()
        #expect(try await h.engine.store.storedPoints(item: item.id).map(\.id) == [kept.id], "the committed point stays, the orphan goes")
        #expect(orphan.id != kept.id)
    }

    @Test func aBackupWhoseOwnerDiedAfterCommittingIsRecordedAsTheSuccessItWas() async throws {
        let h = try await Harness()
        let key = try await h.protectedVM("web01")
        let item = try #require(try await h.catalog.item(for: key))
        // Another process ran it and died between the commit and recording its end.
        var job = Job(id: "job-dead", type: .backup, vm: key, startedAt: h.clock.now(), owner: "gone:1:1")
        job.steps = [JobStep(name: "Commit recovery point", startedAt: h.clock.now())]
        #expect(try await h.catalog.insertJob(job, lock: Engine.itemLock(key)) == nil)
        let point = RecoveryPointRecord(id: "rp-done", item: item.id, vm: key, takenAt: h.clock.now(), type: .onDemand,
                                        consistency: .crashConsistent, expiresAt: nil, disks: [], stats: PointStats(),
                                        guest: GuestOutcome(reason: "test"), job: job.id)
        try await h.catalog.commitPoint(point, item: item, job: job)
        try await h.engine.recoverInterruptedJobs()
        let recorded = try #require(try await h.catalog.job(id: job.id))
        #expect(recorded.status == .succeeded && recorded.details["point"] == "rp-done")
        #expect(recorded.steps.allSatisfy { $0.status == .succeeded })
        #expect(try await h.catalog.points(item: item.id).map(\.id) == ["rp-done"])
    }
}
