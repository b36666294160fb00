import CoffreCore
import CoffreEngine
import CoffreTesting
import Foundation
import Testing

/// SPEC section 3: policies and protection.
@Suite struct ProtectionTests {
    private func utc(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    @Test func P1_policiesHaveDailyOrWeeklySchedulesAndValidatedGFSRetention() async throws {
        let h = try await Harness()
        let nightly = Policy(name: "nightly", schedule: .daily(at: TimeOfDay(hour: 22, minute: 0), timeZone: "Europe/Paris"),
                             retention: Retention(days: 30, weeks: 12, months: 12, years: 3))
        let weekend = Policy(name: "weekend", schedule: .weekly(on: [.saturday, .sunday], at: TimeOfDay(hour: 6, minute: 0)),
                             retention: Retention(days: 28))
        try await h.engine.createPolicy(nightly)
        try await h.engine.createPolicy(weekend)
        #expect(try await h.engine.policies().map(\.name) == ["nightly", "weekend"])
        await expectThrows(.policyAlreadyExists("nightly")) { try await h.engine.createPolicy(nightly) }

        // Slots: 22:00 in Paris is 21:00 UTC in winter; weekly only on the chosen days.
        #expect(nightly.schedule.nextSlot(after: utc("2026-11-23T12:00:00Z")) == utc("2026-11-23T21:00:00Z"))
        #expect(weekend.schedule.nextSlot(after: utc("2026-11-23T12:00:00Z")) == utc("2026-11-28T06:00:00Z"))
        #expect(weekend.schedule.latestSlot(atOrBefore: utc("2026-11-27T12:00:00Z")) == utc("2026-11-22T06:00:00Z"))

        // Limits, with clear errors; Coffre allows more than Azure's preview and says so.
        let invalid: [(Policy, CoffreError.Code)] = [
            (Policy(name: "a", schedule: nightly.schedule, retention: Retention(days: 0)), .invalidRetention),
            (Policy(name: "b", schedule: nightly.schedule, retention: Retention(days: 10_000)), .invalidRetention),
            (Policy(name: "c", schedule: weekend.schedule, retention: Retention(days: 3)), .invalidRetention),
            (Policy(name: "d", schedule: nightly.schedule, retention: Retention(days: 7, weeks: 0)), .invalidRetention),
            (Policy(name: "e", schedule: .daily(at: TimeOfDay(hour: 1, minute: 0), timeZone: "Mars/Olympus"), retention: Retention(days: 7)), .invalidSchedule),
            (Policy(name: "f", schedule: .weekly(on: [], at: TimeOfDay(hour: 1, minute: 0)), retention: Retention(days: 7)), .invalidSchedule),
            (Policy(name: "bad name", schedule: nightly.schedule, retention: Retention(days: 7)), .invalidName),
        ]
        for (policy, code) in invalid {
            await #expect(throws: CoffreError.self) { try await h.engine.createPolicy(policy) }
            do { try await h.engine.createPolicy(policy) } catch let error as CoffreError { #expect(error.code == code, "\(policy.name)") }
        }
        do {
            try await h.engine.createPolicy(invalid[1].0)
        } catch let error as CoffreError {
            #expect(error.message.contains("capped it at 30 days; Coffre allows more"))
        }
        #expect(throws: CoffreError.self) { try TimeOfDay(parsing: "24:00") }
        #expect(try TimeOfDay(parsing: "07:05").description == "07:05")

        // GFS: the first scheduled point of a week / month / year is kept longer.
        let calendar = nightly.schedule.calendar
        let retention = nightly.retention
        let first = utc("2026-12-01T21:00:00Z")  // Tuesday 1 December, 22:00 Paris
        let tags = retention.tags(forPointAt: first, earlierPoints: [utc("2026-11-30T21:00:00Z")], calendar: calendar)
        #expect(tags == [.monthly])  // Monday the 30th already opened the week
        #expect(retention.expiry(ofPointAt: first, tags: tags, calendar: calendar) == utc("2027-12-01T21:00:00Z"))
        let plain = retention.tags(forPointAt: utc("2026-12-02T21:00:00Z"), earlierPoints: [first], calendar: calendar)
        #expect(plain.isEmpty)
        #expect(retention.expiry(ofPointAt: utc("2026-12-02T21:00:00Z"), tags: [], calendar: calendar) == utc("2027-01-01T21:00:00Z"))
    }

    @Test func P2_manyVMsShareAPolicyButAVMHasOnlyOne() async throws {
        let h = try await Harness()
        let a = try h.addVM("a")
        try h.addVM("b")
        try await h.protect(["a", "b"])
        #expect(try await h.catalog.items().map(\.policy) == ["daily", "daily"])
        try await h.engine.createPolicy(Policy(name: "other", schedule: .daily(at: TimeOfDay(hour: 3, minute: 0)), retention: Retention(days: 14)))
        let refused = await h.engine.protect(["a"], policy: "other")
        #expect(refused.errors.first?.error == .alreadyProtected(a, policy: "daily"))
        let moved = await h.engine.protect(["a"], policy: "other", change: true)
        try await h.succeed(try #require(moved.jobs.first))
        #expect(try await h.catalog.item(for: a)?.policy == "other")
        #expect(try await h.catalog.items().count == 2)
    }

    @Test func P3_bulkProtectCreatesOneConfigureProtectionJobPerRegisteredVM() async throws {
        let h = try await Harness()
        for name in ["a", "b", "c"] { try h.addVM(name) }
        try await h.discover()
        for job in await h.engine.register(["a", "b"]).jobs { try await h.succeed(job) }
        try await h.engine.createPolicy(Harness.dailyPolicy)
        let result = await h.engine.protect(["a", "b", "c"], policy: "daily")
        #expect(result.jobs.count == 2)
        #expect(result.jobs.allSatisfy { $0.type == .configureProtection })
        #expect(result.errors.map(\.error) == [.vmNotRegistered(VMKey(cloudService: "prod", name: "c"))])
        for job in result.jobs { try await h.succeed(job) }
        let missing = await h.engine.protect(["a"], policy: "nope")
        #expect(missing.errors.first?.error == .policyNotFound("nope"))
    }

    @Test func P4_protectedPendingInitialBackupUntilTheFirstPoint() async throws {
        let h = try await Harness()
        try h.addVM("web01")
        try await h.protect(["web01"])
        #expect(try await h.engine.itemSummaries().map(\.status) == ["Protected (pending initial backup)"])
        #expect(try await h.engine.dashboard().pendingInitialBackup == 1)
        _ = try await h.backup("web01")
        #expect(try await h.engine.itemSummaries().map(\.status) == ["Protected"])
    }

    @Test func P5_aSlotQueuedByALeaderThatDiedBeforeRecordingItIsNotQueuedAgain() async throws {
        let h = try await Harness()  // Monday 08:00 UTC; policy daily 22:00 UTC
        try h.addVM("a")
        try await h.protect(["a"])
        let key = VMKey(cloudService: "prod", name: "a")
        let protected = try #require(try await h.catalog.item(for: key))
        h.clock.set(utc("2026-11-23T22:00:05Z"))
        let first = try await h.engine.runDueBackups()
        #expect(first.count == 1)
        try await h.succeed(try #require(first.first))
        // As a leader killed between queuing the job and saving the item leaves it: the slot
        // is not recorded. The next leader's pass records it and queues nothing.
        try await h.catalog.saveItem(protected)
        h.clock.set(utc("2026-11-23T22:01:00Z"))
        #expect(try await h.engine.runDueBackups().isEmpty)
        #expect(try await h.catalog.item(for: key)?.lastScheduledSlot == utc("2026-11-23T22:00:00Z"))
        #expect(try await h.catalog.jobs(JobFilter(type: .backup)).count == 1)
        // The next slot is queued as usual.
        h.clock.set(utc("2026-11-24T22:00:01Z"))
        #expect(try await h.engine.runDueBackups().count == 1)
    }

    @Test func P5_dueBackupsBecomeOneJobPerVMAndMissedSlotsRunOnce() async throws {
        let h = try await Harness()  // Monday 08:00 UTC; policy daily 22:00 UTC
        try h.addVM("a")
        try h.addVM("b")
        try await h.protect(["a", "b"])
        #expect(try await h.engine.runDueBackups().isEmpty)  // nothing due before 22:00
        h.clock.set(utc("2026-11-23T22:00:00Z"))
        let due = try await h.engine.runDueBackups()
        #expect(due.count == 2)
        #expect(Set(due.compactMap(\.vm?.name)) == ["a", "b"])
        for job in due { try await h.succeed(job) }
        #expect(due.allSatisfy { $0.details["trigger"] == "scheduled" })
        #expect(try await h.engine.runDueBackups().isEmpty)  // the same slot never runs twice

        // Vault down three days: the missed slots make one job per VM, not three.
        h.clock.set(utc("2026-11-27T09:00:00Z"))
        let caughtUp = try await h.engine.runDueBackups()
        #expect(caughtUp.count == 2)
        #expect(caughtUp.allSatisfy { $0.details["slot"] == "2026-11-26 22:00:00 UTC" })
        for job in caughtUp { try await h.succeed(job) }
        #expect(try await h.engine.runDueBackups().isEmpty)
        let points = try await h.catalog.points(item: try #require(try await h.catalog.item(for: VMKey(cloudService: "prod", name: "a"))).id)
        #expect(points.map(\.type) == [.scheduled, .scheduled])

        // A day of schedules with the clock moved every 10 minutes: exactly one more backup each.
        var jobs: [Job] = []
        for _ in 0..<(24 * 6) {
            h.clock.advance(by: 600)
            jobs += try await h.engine.runDueBackups()
        }
        #expect(jobs.count == 2)
        for job in jobs { try await h.succeed(job) }
    }

    @Test func P6_changingAPolicyRecomputesTheExpiryOfExistingPoints() async throws {
        let h = try await Harness()
        try h.addVM("web01")
        try await h.protect(["web01"])
        h.clock.set(utc("2026-11-23T22:00:00Z"))
        for job in try await h.engine.runDueBackups() { try await h.succeed(job) }
        let item = try #require(try await h.catalog.items().first)
        let before = try #require(try await h.catalog.points(item: item.id).first)
        #expect(before.expiresAt == utc("2026-11-30T22:00:00Z"))
        var policy = Harness.dailyPolicy
        policy.retention = Retention(days: 45)
        try await h.engine.updatePolicy(policy)
        let after = try #require(try await h.catalog.points(item: item.id).first)
        #expect(after.expiresAt == utc("2027-01-07T22:00:00Z"))
        await expectThrows(.policyNotFound("ghost")) {
            try await h.engine.updatePolicy(Policy(name: "ghost", schedule: policy.schedule, retention: policy.retention))
        }
    }
}
