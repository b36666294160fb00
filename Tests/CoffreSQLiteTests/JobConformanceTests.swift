import CoffreCore
import Foundation
import Testing

/// Jobs and their locks, on every catalog.
@Suite struct JobConformanceTests {
    @Test(arguments: Backend.allCases)
    func insertJobReturnsTheInProgressHolderOfTheLockAndInsertsNothing(_ backend: Backend) async throws {
        try await backend.withCatalog { catalog throws in
            let first = Sample.job("job-1")
            #expect(try await catalog.insertJob(first, lock: "cs1/web") == nil)
            #expect(try await catalog.insertJob(Sample.job("job-2"), lock: "cs1/web") == first)
            #expect(try await catalog.job(id: "job-2") == nil)
            #expect(try await catalog.insertJob(Sample.job("job-3"), lock: "cs1/db") == nil, "another lock is free")
            #expect(try await catalog.job(id: "job-1") == first)
        }
    }

    @Test(arguments: Backend.allCases)
    func aNilLockNeverConflicts(_ backend: Backend) async throws {
        try await backend.withCatalog { catalog throws in
            #expect(try await catalog.insertJob(Sample.job("job-1"), lock: nil) == nil)
            #expect(try await catalog.insertJob(Sample.job("job-2"), lock: nil) == nil)
            #expect(try await catalog.jobs(JobFilter()).count == 2)
        }
    }

    @Test(arguments: Backend.allCases)
    func aFinishedJobReleasesItsLock(_ backend: Backend) async throws {
        try await backend.withCatalog { catalog throws in
            var first = Sample.job("job-1")
            _ = try await catalog.insertJob(first, lock: "discovery")
            first.status = .failed
            first.endedAt = Sample.at(5)
            try await catalog.updateJob(first)
            #expect(try await catalog.insertJob(Sample.job("job-2"), lock: "discovery") == nil)
            #expect(try await catalog.insertJob(Sample.job("job-3"), lock: "discovery")?.id == "job-2")
        }
    }

    @Test(arguments: Backend.allCases)
    func concurrentInsertsWithOneLockInsertOnce(_ backend: Backend) async throws {
        try await backend.withCatalog { catalog throws in
            let inserted = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<40 {
                    group.addTask { try await catalog.insertJob(Sample.job("job-\(index)"), lock: "cs1/web") == nil }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(inserted == 1)
            #expect(try await catalog.jobs(JobFilter()).count == 1)
        }
    }

    @Test(arguments: Backend.allCases)
    func updateJobReplacesTheRecordButKeepsARequestedCancel(_ backend: Backend) async throws {
        try await backend.withCatalog { catalog throws in
            var job = Sample.job("job-1")
            _ = try await catalog.insertJob(job, lock: "cs1/web")
            #expect(try await catalog.requestCancel(jobID: job.id)?.cancelRequested == true)

            job.steps.append(JobStep(name: "Copy disks", status: .cancelled, startedAt: Sample.at(2.5), endedAt: Sample.at(3.75)))
            job.progress.readBytes = 999
            job.details["point"] = "p1"
            let stored = try #require(try await catalog.job(id: job.id))
            #expect(stored.cancelRequested)
            try await catalog.updateJob(job)  // the runner's copy, cancelRequested false
            job.cancelRequested = true
            #expect(try await catalog.job(id: job.id) == job)

            job.status = .cancelled
            job.endedAt = Sample.at(4.125)
            job.error = ErrorInfo(code: .cancelled, message: "The operation was cancelled")
            try await catalog.updateJob(job)
            #expect(try await catalog.job(id: job.id) == job)
            #expect(try await catalog.insertJob(Sample.job("job-2"), lock: "cs1/web") == nil, "the lock survives updates until the job ends")
        }
    }

    @Test(arguments: Backend.allCases)
    func updateJobOfAnUnknownJobThrowsJobNotFound(_ backend: Backend) async throws {
        try await backend.withCatalog { catalog throws in
            await expectError(.jobNotFound) { try await catalog.updateJob(Sample.job("ghost")) }
            #expect(try await catalog.job(id: "ghost") == nil)
        }
    }

    @Test(arguments: Backend.allCases)
    func requestCancelOnlyMarksInProgressJobs(_ backend: Backend) async throws {
        try await backend.withCatalog { catalog throws in
            _ = try await catalog.insertJob(Sample.job("running"), lock: nil)
            _ = try await catalog.insertJob(Sample.job("done", status: .succeeded), lock: nil)
            var expected = Sample.job("running")
            expected.cancelRequested = true
            #expect(try await catalog.requestCancel(jobID: "running") == expected)
            #expect(try await catalog.job(id: "running") == expected)
            #expect(try await catalog.requestCancel(jobID: "done") == nil)
            #expect(try await catalog.job(id: "done")?.cancelRequested == false)
            #expect(try await catalog.requestCancel(jobID: "unknown") == nil)
        }
    }

    @Test(arguments: Backend.allCases)
    func jobsAreFilteredAndNewestFirst(_ backend: Backend) async throws {
        try await backend.withCatalog { catalog throws in
            let web = Sample.key("web"), db = Sample.key("db")
            let jobs = [
                Sample.job("a", type: .discovery, vm: nil, startedAt: Sample.at(10), status: .succeeded),
                Sample.job("b", type: .backup, vm: web, startedAt: Sample.at(20), status: .failed),
                Sample.job("c", type: .backup, vm: db, startedAt: Sample.at(30)),
                Sample.job("d", type: .restore, vm: web, startedAt: Sample.at(40)),
                Sample.job("e", type: .backup, vm: web, startedAt: Sample.at(40)),
            ]
            for job in jobs { _ = try await catalog.insertJob(job, lock: nil) }
            func ids(_ filter: JobFilter) async throws -> [String] { try await catalog.jobs(filter).map(\.id) }

            #expect(try await catalog.jobs(JobFilter()) == [jobs[4], jobs[3], jobs[2], jobs[1], jobs[0]])
            #expect(try await ids(JobFilter(type: .backup)) == ["e", "c", "b"])
            #expect(try await ids(JobFilter(status: .inProgress)) == ["e", "d", "c"])
            #expect(try await ids(JobFilter(vm: web)) == ["e", "d", "b"])
            #expect(try await ids(JobFilter(since: Sample.at(30))) == ["e", "d", "c"], "since is inclusive")
            #expect(try await ids(JobFilter(limit: 2)) == ["e", "d"])
            #expect(try await ids(JobFilter(type: .backup, status: .inProgress, vm: web, since: Sample.at(0), limit: 5)) == ["e"])
            #expect(try await ids(JobFilter(type: .verify)).isEmpty)
        }
    }
}
