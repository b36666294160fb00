import CoffreCore
import Foundation
import Testing

/// Jobs and their locks, on every catalog.
extension CatalogConformance {
    static func insertJobReturnsTheInProgressHolderOfTheLockAndInsertsNothing(_ catalog: any Catalog) async throws {
        let first = CatalogSample.job("job-1")
        #expect(try await catalog.insertJob(first, lock: "cs1/web") == nil)
        #expect(try await catalog.insertJob(CatalogSample.job("job-2"), lock: "cs1/web") == first)
        #expect(try await catalog.job(id: "job-2") == nil)
        #expect(try await catalog.insertJob(CatalogSample.job("job-3"), lock: "cs1/db") == nil, "another lock is free")
        #expect(try await catalog.job(id: "job-1") == first)
    }

    static func aNilLockNeverConflicts(_ catalog: any Catalog) async throws {
        #expect(try await catalog.insertJob(CatalogSample.job("job-1"), lock: nil) == nil)
        #expect(try await catalog.insertJob(CatalogSample.job("job-2"), lock: nil) == nil)
        #expect(try await catalog.jobs(JobFilter()).count == 2)
    }

    static func aFinishedJobReleasesItsLock(_ catalog: any Catalog) async throws {
        var first = CatalogSample.job("job-1")
        _ = try await catalog.insertJob(first, lock: "discovery")
        first.status = .failed
        first.endedAt = CatalogSample.at(5)
        try await catalog.updateJob(first)
        #expect(try await catalog.insertJob(CatalogSample.job("job-2"), lock: "discovery") == nil)
        #expect(try await catalog.insertJob(CatalogSample.job("job-3"), lock: "discovery")?.id == "job-2")
    }

    static func concurrentInsertsWithOneLockInsertOnce(_ catalog: any Catalog) async throws {
        let inserted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<40 {
                group.addTask { try await catalog.insertJob(CatalogSample.job("job-\(index)"), lock: "cs1/web") == nil }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(inserted == 1)
        #expect(try await catalog.jobs(JobFilter()).count == 1)
    }

    static func updateJobReplacesTheRecordButKeepsARequestedCancel(_ catalog: any Catalog) async throws {
        var job = CatalogSample.job("job-1")
        _ = try await catalog.insertJob(job, lock: "cs1/web")
        #expect(try await catalog.requestCancel(jobID: job.id)?.cancelRequested == true)

        job.steps.append(JobStep(name: "Copy disks", status: .cancelled, startedAt: CatalogSample.at(2.5), endedAt: CatalogSample.at(3.75)))
        job.progress.readBytes = 999
        job.details["point"] = "p1"
        let stored = try #require(try await catalog.job(id: job.id))
        #expect(stored.cancelRequested)
        try await catalog.updateJob(job)  // the runner's copy, cancelRequested false
        job.cancelRequested = true
        #expect(try await catalog.job(id: job.id) == job)

        job.status = .cancelled
        job.endedAt = CatalogSample.at(4.125)
        job.error = ErrorInfo(code: .cancelled, message: "The operation was cancelled")
        try await catalog.updateJob(job)
        #expect(try await catalog.job(id: job.id) == job)
        #expect(try await catalog.insertJob(CatalogSample.job("job-2"), lock: "cs1/web") == nil, "the lock survives updates until the job ends")
    }

    static func updateJobOfAnUnknownJobThrowsJobNotFound(_ catalog: any Catalog) async throws {
        await expectError(.jobNotFound) { try await catalog.updateJob(CatalogSample.job("ghost")) }
        #expect(try await catalog.job(id: "ghost") == nil)
    }

    static func requestCancelOnlyMarksInProgressJobs(_ catalog: any Catalog) async throws {
        _ = try await catalog.insertJob(CatalogSample.job("running"), lock: nil)
        _ = try await catalog.insertJob(CatalogSample.job("done", status: .succeeded), lock: nil)
        var expected = CatalogSample.job("running")
        expected.cancelRequested = true
        #expect(try await catalog.requestCancel(jobID: "running") == expected)
        #expect(try await catalog.job(id: "running") == expected)
        #expect(try await catalog.requestCancel(jobID: "done") == nil)
        #expect(try await catalog.job(id: "done")?.cancelRequested == false)
        #expect(try await catalog.requestCancel(jobID: "unknown") == nil)
    }

    static func jobsAreFilteredAndNewestFirst(_ catalog: any Catalog) async throws {
        let web = CatalogSample.key("web"), db = CatalogSample.key("db")
        let jobs = [
            CatalogSample.job("a", type: .discovery, vm: nil, startedAt: CatalogSample.at(10), status: .succeeded),
            CatalogSample.job("b", type: .backup, vm: web, startedAt: CatalogSample.at(20), status: .failed),
            CatalogSample.job("c", type: .backup, vm: db, startedAt: CatalogSample.at(30)),
            CatalogSample.job("d", type: .restore, vm: web, startedAt: CatalogSample.at(40)),
            CatalogSample.job("e", type: .backup, vm: web, startedAt: CatalogSample.at(40)),
        ]
        for job in jobs { _ = try await catalog.insertJob(job, lock: nil) }
        func ids(_ filter: JobFilter) async throws -> [String] { try await catalog.jobs(filter).map(\.id) }

        #expect(try await catalog.jobs(JobFilter()) == [jobs[4], jobs[3], jobs[2], jobs[1], jobs[0]])
        #expect(try await ids(JobFilter(type: .backup)) == ["e", "c", "b"])
        #expect(try await ids(JobFilter(status: .inProgress)) == ["e", "d", "c"])
        #expect(try await ids(JobFilter(vm: web)) == ["e", "d", "b"])
        #expect(try await ids(JobFilter(since: CatalogSample.at(30))) == ["e", "d", "c"], "since is inclusive")
        #expect(try await ids(JobFilter(limit: 2)) == ["e", "d"])
        #expect(try await ids(JobFilter(type: .backup, status: .inProgress, vm: web, since: CatalogSample.at(0), limit: 5)) == ["e"])
        #expect(try await ids(JobFilter(type: .verify)).isEmpty)
    }
}
