import CoffreCore
import CoffreSQLite
import CoffreTesting
import Foundation
import Testing

/// What only a file-backed catalog has: persistence, several processes, migrations, bad files.
@Suite struct SQLiteCatalogTests {
    @Test func dataSurvivesCloseAndReopen() async throws {
        try await withTemporaryFolder { folder in
            let path = folder + "/nested/deeper/catalog.sqlite"
            let item = Sample.item("item-web", vm: Sample.key("web"))
            let point = Sample.point("p1", of: item, takenAt: Sample.at(1.5))
            let job = Sample.job("job-1")
            let fabric = FabricRecord(name: "f1", kind: "local", region: "eu-west", address: "/srv")

            let first = try SQLiteCatalog(path: path)
            try await first.recordFabric(fabric)
            _ = try await first.applyDiscovery(fabric: "f1", vms: [Sample.vm("web")], at: Sample.t0)
            try await first.insertPolicy(Sample.policy("gold"))
            try await first.commitPoint(point, item: item)
            _ = try await first.insertJob(job, lock: "cs1/web")
            let vms = try await first.vms()
            try first.close()

            let second = try SQLiteCatalog(path: path)
            #expect(try await second.fabrics() == [fabric])
            #expect(try await second.vms() == vms)
            #expect(try await second.policies() == [Sample.policy("gold")])
            #expect(try await second.items() == [item])
            #expect(try await second.points(item: item.id) == [point])
            #expect(try await second.job(id: job.id) == job)
            #expect(try await second.insertJob(Sample.job("job-2"), lock: "cs1/web") == job, "the lock is persisted too")
            try second.close()
        }
    }

    @Test func aCancelledTaskCanStillRecordHowItsJobEnded() async throws {
        // A job being cancelled runs its last catalog writes in its own, cancelled, task.
        try await withTemporaryFolder { folder in
            let catalog = try SQLiteCatalog(path: folder + "/catalog.sqlite")
            var job = Sample.job("job-1")
            _ = try await catalog.insertJob(job, lock: "cs1/web")
            job.status = .cancelled
            let task = Task {
                while !Task.isCancelled { await Task.yield() }
                try await catalog.updateJob(job)
                return try await catalog.job(id: job.id)
            }
            task.cancel()
            #expect(try await task.value?.status == .cancelled)
            try catalog.close()
        }
    }

    @Test func openingAnExistingCatalogAgainMigratesNothing() async throws {
        try await withTemporaryFolder { folder in
            let path = folder + "/catalog.sqlite"
            let first = try SQLiteCatalog(path: path)
            try await first.insertPolicy(Sample.policy("gold"))
            let second = try SQLiteCatalog(path: path)
            let third = try SQLiteCatalog(path: path)
            #expect(try await third.policies() == [Sample.policy("gold")])
            try await second.insertPolicy(Sample.policy("silver"))
            #expect(try await first.policies().map(\.name) == ["gold", "silver"])
            for catalog in [first, second, third] { try catalog.close() }
        }
    }

    @Test func twoProcessesCreatingTheCatalogAtOnceBothOpenIt() async throws {
        try await withTemporaryFolder { folder in
            let path = folder + "/catalog.sqlite"
            let catalogs = try await withThrowingTaskGroup(of: SQLiteCatalog.self) { group in
                for _ in 0..<4 { group.addTask { try SQLiteCatalog(path: path) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            try await catalogs[0].insertPolicy(Sample.policy("gold"))
            for catalog in catalogs {
                #expect(try await catalog.policy(named: "gold") != nil)
                try catalog.close()
            }
        }
    }

    /// Two instances on one file stand for two processes: each has its own connections.
    @Test func twoProcessesRacingForOneLockInsertOneJob() async throws {
        try await withTemporaryFolder { folder in
            let path = folder + "/catalog.sqlite"
            let processes = [try SQLiteCatalog(path: path), try SQLiteCatalog(path: path)]
            let holders = try await withThrowingTaskGroup(of: Job?.self) { group in
                for index in 0..<40 {
                    let catalog = processes[index % 2]
                    group.addTask { try await catalog.insertJob(Sample.job("job-\(index)"), lock: "cs1/web") }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(holders.count { $0 == nil } == 1)
            let jobs = try await processes[1].jobs(JobFilter())
            #expect(jobs.count == 1)
            #expect(Set(holders.compactMap { $0?.id }) == Set(jobs.map(\.id)), "the losers are told who holds the lock")
            for catalog in processes { try catalog.close() }
        }
    }

    @Test func aCancelRequestedByAnotherProcessSurvivesTheRunnersUpdate() async throws {
        try await withTemporaryFolder { folder in
            let path = folder + "/catalog.sqlite"
            let runner = try SQLiteCatalog(path: path), cli = try SQLiteCatalog(path: path)
            var job = Sample.job("job-1")
            _ = try await runner.insertJob(job, lock: "cs1/web")
            _ = try await cli.requestCancel(jobID: job.id)
            job.progress.writtenBytes = 1
            try await runner.updateJob(job)
            #expect(try await runner.job(id: job.id)?.cancelRequested == true)
            try runner.close()
            try cli.close()
        }
    }

    @Test func aFileThatIsNotADatabaseIsCatalogUnreadable() async throws {
        try await withTemporaryFolder { folder in
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let path = folder + "/catalog.sqlite"
            try Data(String(repeating: "this is not a database\n", count: 200).utf8).write(to: URL(fileURLWithPath: path))
            let error = await CatalogConformance.expectError(.catalogUnreadable) { _ = try SQLiteCatalog(path: path) }
            #expect(error?.message.contains(path) == true)
            #expect(error?.message.contains("not an intact SQLite database") == true)
            #expect(error?.workaround?.isEmpty == false)
        }
    }

    @Test func aFolderThatCannotBeCreatedIsCatalogUnreadable() async throws {
        try await withTemporaryFolder { folder in
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let blocker = folder + "/file"
            try Data("x".utf8).write(to: URL(fileURLWithPath: blocker))
            let error = await CatalogConformance.expectError(.catalogUnreadable) { _ = try SQLiteCatalog(path: blocker + "/catalog.sqlite") }
            #expect(error?.message.contains(blocker) == true)
        }
    }
}
