public import CoffreCore
public import Foundation

/// The scheduler's decisions, without any I/O: which slots of which items are due, and what
/// the leader does on each tick. The engine reads the catalog, asks, and acts (P5).
public struct Scheduler: Sendable, Equatable {
    /// One due slot of one item: one job to queue or start.
    public struct Due: Sendable, Equatable {
        public var item: ProtectedItem
        /// The latest slot at or before now; the slots missed before it collapse into this one.
        public var slot: Date
    }

    /// What the leader does in one tick, in this order.
    public enum Duty: Sendable, Equatable {
        /// Jobs of dead owners end `JobInterrupted`, and what they left is cleaned up.
        case recoverInterrupted
        /// Backups due are queued.
        case queueDueBackups
        /// Verifications due are queued.
        case queueDueVerifications
        /// This node claims queued jobs at once (the others claim on their own beat).
        case claimQueued
        /// Expired points go, soft-deleted items past their date are purged.
        case applyRetention
        /// Points the store holds but the catalog never committed are expired (decision 0025):
        /// it lists the whole store, so not on every tick.
        case sweepUncommitted
        /// A copy of the catalog goes into the vault when none was written for a while
        /// (decision 0030); checked with the sweep.
        case copyCatalog
        /// The vault is measured for the storage chart's history, at most hourly.
        case sampleVault
    }

    private enum Role: Sendable, Equatable {
        case following
        /// Ticks led since the last sweep.
        case leading(ticksSinceSweep: Int)
    }

    /// Every how many ticks the leader sweeps for uncommitted points.
    public let sweepEvery: Int
    private var role = Role.following

    public init(sweepEvery: Int = 10) {
        precondition(sweepEvery > 0, "sweepEvery must be positive")
        self.sweepEvery = sweepEvery
    }

    /// The duties of one tick. A node that does not lead has none. A node that leads does the
    /// others at every tick, and sweeps at its first tick as leader (what the last leader left
    /// is cleaned up at once), then every `sweepEvery` ticks.
    public mutating func tick(leading: Bool) -> [Duty] {
        guard leading else {
            role = .following
            return []
        }
        var duties: [Duty] = [.recoverInterrupted, .queueDueBackups, .queueDueVerifications, .claimQueued, .applyRetention]
        switch role {
        case .following:
            duties += [.sweepUncommitted, .copyCatalog, .sampleVault]
            role = .leading(ticksSinceSweep: 0)
        case .leading(let ticks) where ticks + 1 >= sweepEvery:
            duties += [.sweepUncommitted, .copyCatalog, .sampleVault]
            role = .leading(ticksSinceSweep: 0)
        case .leading(let ticks):
            role = .leading(ticksSinceSweep: ticks + 1)
        }
        return duties
    }

    /// The backups due at `now`: for each protected item, the latest slot of its policy's
    /// schedule at or before `now`, if none was queued for it since it was protected. Items of
    /// an unknown policy, and stopped, soft-deleted or configuring ones, have none.
    public static func dueBackups(items: [ProtectedItem], policies: [Policy], at now: Date) -> [Due] {
        due(items, policies) { item, policy in
            guard let slot = policy.schedule.latestSlot(atOrBefore: now),
                  slot > (item.lastScheduledSlot ?? item.protectedAt) else { return nil }
            return slot
        }
    }

    /// The verifications due at `now`: for each protected item whose policy verifies on a
    /// schedule, the latest verification slot at or before `now`, if none was recorded since it
    /// was protected.
    public static func dueVerifications(items: [ProtectedItem], policies: [Policy], at now: Date) -> [Due] {
        due(items, policies) { item, policy in
            guard let schedule = policy.verification?.schedule,
                  let slot = schedule.latestSlot(atOrBefore: now),
                  slot > (item.lastVerificationSlot ?? item.protectedAt) else { return nil }
            return slot
        }
    }

    private static func due(_ items: [ProtectedItem], _ policies: [Policy],
                            slot: (ProtectedItem, Policy) -> Date?) -> [Due] {
        let byName = Dictionary(policies.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        return items.compactMap { item in
            guard item.state == .protected, let policy = byName[item.policy], let slot = slot(item, policy) else { return nil }
            return Due(item: item, slot: slot)
        }
    }
}
