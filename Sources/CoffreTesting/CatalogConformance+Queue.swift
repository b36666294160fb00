import CoffreCore
import Foundation
import Testing

/// The job queue on every catalog: queued jobs hold their lock, claims take the oldest up to
/// the limits and never one job twice, and a job's record and point are written only by its
/// owner while it runs.
extension CatalogConformance {
    static func queued(_ id: String, vm: String, fabric: String = "f1", at seconds: Double) -> Job {
        var job = CatalogSample.job(id, vm: CatalogSample.key(vm), startedAt: CatalogSample.at(seconds), status: .queued)
        job.details["fabric"] = fabric
        return job
    }

    static func aQueuedJobHoldsItsLockAndCanBeCancelledBeforeItRuns(_ catalog: any Catalog) async throws {
        let job = Self.queued("job-1", vm: "web", at: 1)
        #expect(try await catalog.insertJob(job, lock: "vm:web") == nil)
        #expect(try await catalog.insertJob(CatalogSample.job("job-2"), lock: "vm:web")?.id == "job-1")
        #expect(try await catalog.requestCancel(jobID: "job-1") == nil, "only running jobs are asked to stop")
        let cancelled = try #require(try await catalog.cancelQueuedJob(id: "job-1", at: CatalogSample.at(2)))
        #expect(cancelled.status == .cancelled && cancelled.endedAt == CatalogSample.at(2) && cancelled.error?.code == .cancelled)
        #expect(try await catalog.job(id: "job-1") == cancelled)
        #expect(try await catalog.cancelQueuedJob(id: "job-1", at: CatalogSample.at(3)) == nil)
        #expect(try await catalog.insertJob(CatalogSample.job("job-3"), lock: "vm:web") == nil, "the lock is free again")
        let claimed = try await catalog.claimJobs(owner: "node-a", limits: ClaimLimits(type: .backup, jobs: 5), at: CatalogSample.at(4))
        #expect(claimed.isEmpty)
    }

    static func claimsTakeTheOldestQueuedJobsUpToTheLimitsAndMakeThemTheClaimers(_ catalog: any Catalog) async throws {
        for name in ["f1", "f2"] {
            try await catalog.recordFabric(FabricRecord(name: name, kind: "LocalFabric", region: "r", address: ""))
        }
        // f1 already runs one backup; its limit is 2.
        _ = try await catalog.insertJob(CatalogSample.job("running", vm: CatalogSample.key("busy")), lock: "vm:busy")
        var running = try #require(try await catalog.job(id: "running"))
        running.details["fabric"] = "f1"
        try await catalog.updateJob(running)
        let jobs = [
            Self.queued("q1", vm: "a", at: 10), Self.queued("q2", vm: "b", at: 11), Self.queued("q3", vm: "c", fabric: "f2", at: 12),
            Self.queued("q4", vm: "d", fabric: "f2", at: 13), Self.queued("q0", vm: "e", fabric: "f2", at: 5),
        ]
        for job in jobs { #expect(try await catalog.insertJob(job, lock: "vm:\(job.vm!.name)") == nil) }
        _ = try await catalog.insertJob(Self.queued("restore", vm: "r", at: 1).with(type: .restore), lock: nil)

        let limits = ClaimLimits(type: .backup, jobs: 3, perFabric: ["f1": 2])
        let first = try await catalog.claimJobs(owner: "node-a", limits: limits, at: CatalogSample.at(20))
        #expect(first.map(\.id) == ["q0", "q1", "q3"], "oldest first, f1 full after q1")
        for job in first {
            #expect(job.status == .inProgress && job.owner == "node-a" && job.details["claimedAt"] != nil)
            #expect(try await catalog.job(id: job.id) == job)
        }
        let second = try await catalog.claimJobs(owner: "node-b", limits: limits, at: CatalogSample.at(21))
        #expect(second.map(\.id) == ["q4"], "q2 waits for a place on f1")
        #expect(try await catalog.job(id: "q2")?.status == .queued)
        #expect(try await catalog.job(id: "restore")?.status == .queued, "only the claimed type")
        let only = try await catalog.claimJobs(
            owner: "cli", limits: ClaimLimits(type: .backup, jobs: 5, only: "q2"), at: CatalogSample.at(22))
        #expect(only.map(\.id) == ["q2"])
    }

    static func concurrentClaimersNeverTakeOneJobTwiceNorPassAFabricsLimit(_ catalog: any Catalog) async throws {
        try await catalog.recordFabric(FabricRecord(name: "f1", kind: "LocalFabric", region: "r", address: ""))
        for index in 0..<30 {
            let fabric = index.isMultiple(of: 3) ? "f1" : "f2"
            _ = try await catalog.insertJob(Self.queued("q\(index)", vm: "vm\(index)", fabric: fabric, at: Double(index)),
                                            lock: "vm:vm\(index)")
        }
        let limits = ClaimLimits(type: .backup, jobs: 2, perFabric: ["f1": 3])
        let claimed = try await withThrowingTaskGroup(of: [Job].self) { group in
            for node in 0..<12 {
                group.addTask { try await catalog.claimJobs(owner: "node-\(node)", limits: limits, at: CatalogSample.at(100)) }
            }
            return try await group.reduce(into: [Job]()) { $0 += $1 }
        }
        let ids = claimed.map(\.id)
        #expect(Set(ids).count == ids.count, "a job claimed twice")
        // Rows another claimer holds are skipped, not waited for: fewer may be taken, never too many.
        #expect(!claimed.isEmpty && claimed.count <= 24)
        #expect(claimed.count { $0.details["fabric"] == "f1" } <= 3)
        let stored = try await catalog.jobs(JobFilter(status: .inProgress))
        #expect(Set(stored.map(\.id)) == Set(ids))
        for job in stored { #expect(claimed.first { $0.id == job.id }?.owner == job.owner) }
        // Once nobody else claims, f1 fills up to its limit exactly.
        let rest = try await catalog.claimJobs(owner: "last", limits: ClaimLimits(type: .backup, jobs: 30, perFabric: ["f1": 3]),
                                               at: CatalogSample.at(101))
        let all = claimed + rest
        #expect(Set(all.map(\.id)).count == all.count)
        #expect(all.count { $0.details["fabric"] == "f1" } == 3)
        #expect(all.count == 3 + 20, "every f2 job and three of f1")
    }

    static func aJobThatChangedHandsOrEndedTakesNoMoreWritesFromItsFormerOwner(_ catalog: any Catalog) async throws {
        try await catalog.insertPolicy(CatalogSample.policy("gold"))
        let item = CatalogSample.item("item-web", vm: CatalogSample.key("web"))
        try await catalog.saveItem(item)
        _ = try await catalog.insertJob(Self.queued("job-1", vm: "web", at: 1), lock: "vm:web")
        let mine = try #require(try await catalog.claimJobs(
            owner: "node-a", limits: ClaimLimits(type: .backup, jobs: 1), at: CatalogSample.at(2)).first)
        var stale = mine
        stale.owner = "node-b"
        await expectError(.jobLeaseLost) { try await catalog.updateJob(stale) }
        await expectError(.jobLeaseLost) {
            try await catalog.commitPoint(CatalogSample.point("p-stale", of: item, takenAt: CatalogSample.at(3)), item: item, job: stale)
        }
        try await catalog.commitPoint(CatalogSample.point("p1", of: item, takenAt: CatalogSample.at(3)), item: item, job: mine)

        // Another node took node-a for dead and ended the job.
        var interrupted = mine
        interrupted.status = .failed
        try await catalog.updateJob(interrupted)
        var late = mine
        late.progress.writtenBytes = 1
        await expectError(.jobLeaseLost) { try await catalog.updateJob(late) }
        await expectError(.jobLeaseLost) {
            try await catalog.commitPoint(CatalogSample.point("p2", of: item, takenAt: CatalogSample.at(4)), item: item, job: mine)
        }
        #expect(try await catalog.points(item: item.id).map(\.id) == ["p1"])
        #expect(try await catalog.job(id: "job-1")?.status == .failed)
    }
}

extension Job {
    fileprivate func with(type: JobType) -> Job {
        var job = self
        job.type = type
        return job
    }
}
