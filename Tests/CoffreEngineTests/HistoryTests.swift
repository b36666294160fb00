import CoffreCore
@testable import CoffreEngine
import CoffreTesting
import Foundation
import Testing

/// The series behind the dashboard's charts (issue 19): a known history gives exact points,
/// totals and gaps.
@Suite("Chart series")
struct HistoryTests {
    static let now = ManualClock(iso: "2026-12-10T12:00:00Z").now()
    static let vm = VMKey(cloudService: "prod", name: "web01")

    static func at(_ iso: String) -> Date { ManualClock(iso: iso).now() }

    static func sample(_ day: String, stored: Int64, logical: Int64) -> VaultSample {
        VaultSample(day: day, takenAt: at(day + "T23:00:00Z"), storedBytes: stored, logicalBytes: logical)
    }

    @Test func storageKeepsThePeriodsSamplesAndMeasuresGrowthFromTheNewest() {
        let samples = [Self.sample("2026-11-01", stored: 100, logical: 500), Self.sample("2026-11-09", stored: 200, logical: 900),
                       Self.sample("2026-12-02", stored: 300, logical: 1500), Self.sample("2026-12-03", stored: 350, logical: 1600),
                       Self.sample("2026-12-10", stored: 420, logical: 2000)]
        let history = ReadModel.storageHistory(samples, days: 30, now: Self.now)
        // 30 days back from 2026-12-10, today included: from 2026-11-11.
        #expect(history.samples.map(\.day) == ["2026-12-02", "2026-12-03", "2026-12-10"])
        // 7 days before 2026-12-10 is 2026-12-03 (that sample counts); 30 days before is 2026-11-10.
        #expect(history.growth7Days == Int64(420 - 350))
        #expect(history.growth30Days == Int64(420 - 200))
        #expect(ReadModel.storageHistory(Array(samples.suffix(2)), days: 30, now: Self.now).growth30Days == nil,
                "no sample 30 days old: no growth")
        #expect(ReadModel.storageHistory([], days: 7, now: Self.now) == StorageHistory(samples: [], growth7Days: nil, growth30Days: nil))
    }

    @Test func backupsAreCountedPerDayByOutcomeWithEveryDayPresent() {
        func job(_ id: String, _ iso: String, _ status: JobStatus, type: JobType = .backup) -> Job {
            Job(id: id, type: type, status: status, vm: Self.vm, startedAt: Self.at(iso), owner: "test")
        }
        let jobs = [job("a", "2026-12-10T01:00:00Z", .succeeded), job("b", "2026-12-10T23:59:59Z", .failed),
                    job("c", "2026-12-08T00:00:00Z", .succeeded), job("d", "2026-12-08T10:00:00Z", .cancelled),
                    job("e", "2026-12-08T11:00:00Z", .succeeded), job("f", "2026-12-10T02:00:00Z", .inProgress),
                    job("g", "2026-12-09T02:00:00Z", .succeeded, type: .restore), job("h", "2026-12-03T05:00:00Z", .failed)]
        let days = ReadModel.backupDays(jobs, days: 3, now: Self.now)
        #expect(days == [JobDay(day: "2026-12-08", succeeded: 2, cancelled: 1), JobDay(day: "2026-12-09"),
                         JobDay(day: "2026-12-10", succeeded: 1, failed: 1)])
        #expect(ReadModel.backupDays(jobs, days: 30, now: Self.now).count == 30)
        #expect(ReadModel.backupDays(jobs, days: 30, now: Self.now).map(\.total).reduce(0, +) == 6)
    }

    @Test func theTimelineShowsEachPointAndEveryScheduledSlotThatProducedNone() {
        let policy = Policy(name: "nightly", schedule: .daily(at: TimeOfDay(hour: 22, minute: 0)), retention: Retention(days: 30))
        let item = ProtectedItem(id: "item", vm: Self.vm, policy: "nightly", state: .protected, protectedAt: Self.at("2026-12-04T09:00:00Z"))
        func point(_ id: String, _ iso: String, _ type: PointType, _ consistency: Consistency) -> RecoveryPointRecord {
            RecoveryPointRecord(id: id, item: "item", vm: Self.vm, takenAt: Self.at(iso), type: type, consistency: consistency,
                                expiresAt: nil, disks: [], stats: PointStats(), guest: GuestOutcome(reason: ""), job: "job-\(id)")
        }
        // Windows (slot to next slot) over by 12-10 12:00: those of 12-04 … 12-08 22:00; the
        // 12-09 22:00 slot's window runs until 12-10 22:00.
        let points = [point("p1", "2026-12-04T22:01:00Z", .scheduled, .applicationConsistent),
                      point("p2", "2026-12-06T03:00:00Z", .scheduled, .crashConsistent),   // the 12-05 slot, late
                      point("p3", "2026-12-07T10:00:00Z", .onDemand, .fileSystemConsistent),  // not the 12-06 slot's
                      point("p4", "2026-12-08T22:00:00Z", .scheduled, .applicationConsistent),
                      point("old", "2026-11-01T22:00:00Z", .scheduled, .applicationConsistent)]
        let from = Self.at("2026-12-03T12:00:00Z")
        let jobs = [Job(id: "j1", type: .backup, status: .succeeded, vm: Self.vm, startedAt: Self.at("2026-12-04T22:00:00Z"),
                        endedAt: Self.at("2026-12-04T22:01:30Z"), progress: JobProgress(readBytes: 4096, writtenBytes: 1000), owner: "t"),
                    Job(id: "j2", type: .backup, status: .inProgress, vm: Self.vm, startedAt: Self.at("2026-12-10T11:00:00Z"), owner: "t")]
        let history = ReadModel.itemHistory(item: item, policy: policy, points: points, jobs: jobs, from: from, to: Self.now)
        #expect(history.points.map(\.id) == ["p1", "p2", "p3", "p4"])
        #expect(history.points.map(\.type) == [.scheduled, .scheduled, .onDemand, .scheduled])
        #expect(history.missedSlots == ["2026-12-06", "2026-12-07"].map { Self.at($0 + "T22:00:00Z") })
        #expect(history.backups == [ItemHistory.Run(job: "j1", startedAt: Self.at("2026-12-04T22:00:00Z"), seconds: 90,
                                                    readBytes: 4096, writtenBytes: 1000, status: .succeeded)])
        // A stopped item has no slots to miss.
        var stopped = item
        stopped.state = .stopped
        #expect(ReadModel.itemHistory(item: stopped, policy: policy, points: points, jobs: jobs, from: from, to: Self.now).missedSlots.isEmpty)
    }

    @Test func aBackupRecordsTheDaysVaultSample() async throws {
        let h = try await Harness()
        try await h.protectedVM("web01", writing: 100_000)
        _ = try await h.backup("web01")
        let samples = try await h.catalog.vaultSamples()
        let sample = try #require(samples.last)
        #expect(samples.count == 1 && sample.day == VaultSample.day(of: h.clock.now()))
        #expect(sample.logicalBytes == 1 << 20, "one point of one 1 MiB disk")
        #expect(sample.storedBytes > 0 && sample.storedBytes < sample.logicalBytes, "a mostly empty disk stores less than it holds")
        let history = try await h.engine.storageHistory(days: 30)
        #expect(history.samples == samples)
        await expectThrows(CoffreError(.invalidFilter, "'days' must be between 1 and 400, not 0")) {
            _ = try await h.engine.storageHistory(days: 0)
        }
        // A minute later, another backup measures again: two points of 1 MiB now, same day.
        h.clock.advance(by: 61)
        _ = try await h.backup("web01")
        let again = try await h.catalog.vaultSamples()
        #expect(again.count == 1 && again[0].logicalBytes == 2 << 20 && again[0].takenAt == h.clock.now())
        let ranked = try await h.engine.itemStorage()
        #expect(ranked.map(\.vm.name) == ["web01"] && ranked[0].points == 2 && ranked[0].bytesOnlyHere > 0)
    }
}
