import CoffreCore
import CoffreEngine
import Foundation
import Testing

/// The scheduler without I/O: due slots from items and policies, and the leader's duties tick
/// by tick.
@Suite struct SchedulerTests {
    let nightly = Policy(name: "nightly", schedule: .daily(at: TimeOfDay(hour: 22, minute: 0)), retention: Retention(days: 7))

    func date(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    func item(_ name: String, policy: String = "nightly", state: ProtectionState = .protected,
              protectedAt: String = "2026-11-20T08:00:00Z", lastSlot: String? = nil, lastVerification: String? = nil) -> ProtectedItem {
        ProtectedItem(id: "item-\(name)", vm: VMKey(cloudService: "local", name: name), policy: policy, state: state,
                      protectedAt: date(protectedAt), lastScheduledSlot: lastSlot.map(date),
                      lastVerificationSlot: lastVerification.map(date))
    }

    @Test func theLatestSlotIsDueOnceAndMissedSlotsCollapseIntoIt() {
        let now = date("2026-11-23T22:05:00Z")
        // Protected three days ago, never backed up: the three missed slots make one job, the latest.
        let due = Scheduler.dueBackups(items: [item("web")], policies: [nightly], at: now)
        #expect(due.map(\.slot) == [date("2026-11-23T22:00:00Z")])
        #expect(due.map(\.item.id) == ["item-web"])
        // That slot queued: nothing more until the next one.
        let queued = item("web", lastSlot: "2026-11-23T22:00:00Z")
        #expect(Scheduler.dueBackups(items: [queued], policies: [nightly], at: now).isEmpty)
        #expect(Scheduler.dueBackups(items: [queued], policies: [nightly], at: date("2026-11-24T21:59:59Z")).isEmpty)
        #expect(Scheduler.dueBackups(items: [queued], policies: [nightly], at: date("2026-11-24T22:00:00Z")).map(\.slot)
                == [date("2026-11-24T22:00:00Z")])
    }

    @Test func noSlotBeforeProtectionAndNoneForItemsThatAreNotProtected() {
        let now = date("2026-11-23T22:30:00Z")
        // Protected after tonight's slot: the first slot is tomorrow's.
        #expect(Scheduler.dueBackups(items: [item("late", protectedAt: "2026-11-23T22:10:00Z")], policies: [nightly], at: now).isEmpty)
        let others = [item("stopped", state: .stopped), item("deleted", state: .softDeleted),
                      item("configuring", state: .configuring), item("orphan", policy: "gone")]
        #expect(Scheduler.dueBackups(items: others, policies: [nightly], at: now).isEmpty)
        #expect(Scheduler.dueBackups(items: others + [item("web")], policies: [nightly], at: now).map(\.item.id) == ["item-web"])
    }

    @Test func verificationsFollowTheirOwnScheduleAndSlot() {
        var verifying = nightly
        verifying.name = "verified"
        verifying.verification = VerificationPolicy(schedule: .weekly(on: [.sunday], at: TimeOfDay(hour: 4, minute: 0)),
                                                    checks: [.data])
        let sunday = date("2026-11-22T04:00:00Z")
        let now = date("2026-11-23T22:05:00Z")
        let items = [item("web", policy: "verified"), item("db")]
        #expect(Scheduler.dueVerifications(items: items, policies: [nightly, verifying], at: now).map(\.slot) == [sunday])
        // The backup slot of the same item is independent of its verification slot.
        #expect(Scheduler.dueBackups(items: items, policies: [nightly, verifying], at: now).count == 2)
        let verified = item("web", policy: "verified", lastVerification: "2026-11-22T04:00:00Z")
        #expect(Scheduler.dueVerifications(items: [verified], policies: [verifying], at: now).isEmpty)
    }

    @Test func onlyTheLeaderHasDutiesAndItSweepsWhenItStartsLeadingThenEveryNthTick() {
        var scheduler = Scheduler(sweepEvery: 3)
        #expect(scheduler.tick(leading: false).isEmpty)
        let every: [Scheduler.Duty] = [.recoverInterrupted, .queueDueBackups, .queueDueVerifications, .claimQueued, .applyRetention]
        #expect(scheduler.tick(leading: true) == every + [.sweepUncommitted, .copyCatalog, .sampleVault], "a new leader sweeps at once")
        #expect(scheduler.tick(leading: true) == every)
        #expect(scheduler.tick(leading: true) == every)
        #expect(scheduler.tick(leading: true) == every + [.sweepUncommitted, .copyCatalog, .sampleVault])
        #expect(scheduler.tick(leading: true) == every)
        // Leadership lost and won again: what the other leader left is swept at once.
        #expect(scheduler.tick(leading: false).isEmpty)
        #expect(scheduler.tick(leading: true) == every + [.sweepUncommitted, .copyCatalog, .sampleVault])
        #expect(Scheduler().sweepEvery == 10)
    }
}
