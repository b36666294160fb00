public import CoffreCore
import Foundation

extension Engine {
    // MARK: Policies (P1, P6)

    /// Adds a policy after validating it.
    public func createPolicy(_ policy: Policy) async throws {
        try policy.validate()
        try await catalog.insertPolicy(policy)
        await catalogChanged()
    }

    /// Replaces a policy; the expiry of every existing point of its items is recomputed (P6).
    public func updatePolicy(_ policy: Policy) async throws {
        try policy.validate()
        try await catalog.updatePolicy(policy)
        for item in try await catalog.items() where item.policy == policy.name {
            try await recomputeExpiries(of: item, policy: policy)
        }
        await catalogChanged()
    }

    public func policies() async throws -> [Policy] { try await catalog.policies() }

    public func policy(named name: String) async throws -> Policy {
        guard let policy = try await catalog.policy(named: name) else { throw CoffreError.policyNotFound(name) }
        return policy
    }

    // MARK: Protect (P2–P4)

    /// Binds registered VMs to a policy: one ConfigureProtection job per VM (P3). A VM has one
    /// policy at a time (P2): `change` moves a protected VM to another policy, recomputing
    /// its points' expiry.
    public func protect(_ names: [String], policy name: String, change: Bool = false) async -> BulkResult {
        var result = BulkResult()
        do {
            _ = try await policy(named: name)
        } catch {
            result.errors = names.map { ($0, error as? CoffreError ?? CoffreError(.internalError, "\(error)")) }
            return result
        }
        for vmName in names {
            do {
                result.jobs.append(try await protect(try await resolveVM(vmName), policy: name, change: change))
            } catch {
                result.errors.append((vmName, error as? CoffreError ?? CoffreError(.internalError, "\(error)")))
            }
        }
        return result
    }

    private func protect(_ record: VMRecord, policy name: String, change: Bool) async throws -> Job {
        let key = record.key
        guard record.registration == .registered else { throw CoffreError.vmNotRegistered(key) }
        guard record.vm.region == configuration.region else {
            throw CoffreError.vmNotInVaultRegion(key, region: record.vm.region, vaultRegion: configuration.region)
        }
        let existing = try await catalog.item(for: key)
        if let existing {
            switch existing.state {
            case .protected, .configuring:
                if !change { throw CoffreError.alreadyProtected(key, policy: existing.policy) }
            case .stopped: throw CoffreError.protectionStopped(key)
            case .softDeleted: throw CoffreError.itemSoftDeleted(key, purgeAfter: Self.day(existing.purgeAfter))
            }
        }
        return try await runner.launch(.configureProtection, vm: key, lock: Self.itemLock(key), details: ["policy": name]) { job in
            try await job.step("Apply policy \(name)") {
                let policy = try await self.policy(named: name)
                if let existing {
                    var item = try await self.item(id: existing.id)
                    job.note("policy \(item.policy) → \(name); expiry of existing points recomputed")
                    item.policy = name
                    try await self.catalog.saveItem(item)
                    try await self.recomputeExpiries(of: item, policy: policy)
                } else {
                    let item = ProtectedItem(id: Self.makeItemID(), vm: key, policy: name, state: .protected,
                                             protectedAt: self.clock.now())
                    try await self.catalog.saveItem(item)
                    let next = policy.schedule.nextSlot(after: item.protectedAt).map { Self.instant($0) } ?? "never"
                    job.note("protected (pending initial backup); first scheduled backup \(next)")
                }
            }
        }
    }

    // MARK: Stop, resume, undelete (K4)

    /// Stops protection. `deleteData == false` (StopProtection job): no more backups, points
    /// kept forever and restorable. `true` (DeleteBackupData job): points are soft-deleted for
    /// `softDeleteDays`, restorable only after `undelete`, then purged.
    public func stopProtection(_ name: String, deleteData: Bool) async throws -> Job {
        let record = try await resolveVM(name)
        let key = record.key
        guard let current = try await catalog.item(for: key) else { throw CoffreError.notProtected(key) }
        if current.state == .softDeleted { throw CoffreError.itemSoftDeleted(key, purgeAfter: Self.day(current.purgeAfter)) }
        if current.state == .stopped && !deleteData { throw CoffreError.protectionStopped(key) }
        return try await runner.launch(deleteData ? .deleteBackupData : .stopProtection, vm: key, lock: Self.itemLock(key)) { job in
            try await job.step(deleteData ? "Soft-delete backup data" : "Stop protection, retain data") {
                var item = try await self.item(id: current.id)
                let now = self.clock.now()
                if deleteData {
                    item.state = .softDeleted
                    item.softDeletedAt = now
                    item.purgeAfter = Calendar(identifier: .gregorian).date(
                        byAdding: .day, value: self.configuration.softDeleteDays, to: now)
                    job.note("points kept until \(Self.instant(item.purgeAfter!)), restorable after undelete")
                } else {
                    item.state = .stopped
                    job.note("no more backups; points kept until protection resumes")
                }
                try await self.catalog.saveItem(item)
                try await self.recomputeExpiries(of: item, policy: nil)
            }
        }
    }

    /// Brings soft-deleted backup data back (Undelete job): the item is then stopped with
    /// data retained, and `resume` re-applies its policy.
    public func undelete(_ name: String) async throws -> Job {
        let key = try await resolveVM(name).key
        guard let current = try await catalog.item(for: key) else { throw CoffreError.notProtected(key) }
        guard current.state == .softDeleted else { throw CoffreError.itemNotSoftDeleted(key) }
        return try await runner.launch(.undelete, vm: key, lock: Self.itemLock(key)) { job in
            try await job.step("Undelete backup data") {
                var item = try await self.item(id: current.id)
                item.state = .stopped
                item.softDeletedAt = nil
                item.purgeAfter = nil
                try await self.catalog.saveItem(item)
                try await self.recomputeExpiries(of: item, policy: nil)
                job.note("points restorable again; protection stays stopped until resumed")
            }
        }
    }

    /// Resumes a stopped protection (ConfigureProtection job): backups restart at the next
    /// scheduled slot and the policy's retention applies again to every point (K4).
    public func resume(_ name: String) async throws -> Job {
        let key = try await resolveVM(name).key
        guard let current = try await catalog.item(for: key) else { throw CoffreError.notProtected(key) }
        if current.state == .softDeleted { throw CoffreError.itemSoftDeleted(key, purgeAfter: Self.day(current.purgeAfter)) }
        guard current.state == .stopped else { throw CoffreError.protectionNotStopped(key) }
        return try await runner.launch(.configureProtection, vm: key, lock: Self.itemLock(key), details: ["policy": current.policy]) { job in
            try await job.step("Resume protection with policy \(current.policy)") {
                var item = try await self.item(id: current.id)
                let policy = try await self.policy(named: item.policy)
                item.state = .protected
                // Slots missed while stopped were not missed: nothing was due.
                item.lastScheduledSlot = policy.schedule.latestSlot(atOrBefore: self.clock.now())
                try await self.catalog.saveItem(item)
                try await self.recomputeExpiries(of: item, policy: policy)
            }
        }
    }

    // MARK: Expiry

    /// Sets each point's expiry from the item's state: the policy's retention for scheduled
    /// points of a protected item, its own date for on-demand points, never while protection is
    /// stopped; soft-deleted items keep theirs (cleanup skips them).
    func recomputeExpiries(of item: ProtectedItem, policy: Policy?) async throws {
        guard item.state != .softDeleted else { return }
        var points = try await catalog.points(item: item.id)
        var policy = policy
        if policy == nil, item.state == .protected || item.state == .configuring {
            policy = try await self.policy(named: item.policy)
        }
        for index in points.indices {
            points[index].expiresAt = policy.flatMap { Self.expiry(of: points[index], item: item, policy: $0) }
        }
        try await catalog.updatePoints(points)
    }

    /// A point's expiry: none unless the item is protected; an on-demand point's own date; a
    /// scheduled point's by its policy's retention and tags.
    static func expiry(of point: RecoveryPointRecord, item: ProtectedItem, policy: Policy) -> Date? {
        guard item.state == .protected || item.state == .configuring else { return nil }
        switch point.type {
        case .onDemand:
            return point.retainUntil
        case .scheduled:
            return policy.retention.expiry(ofPointAt: point.takenAt, tags: Set(point.tags), calendar: policy.schedule.calendar)
        }
    }

    /// The item as stored now (operations re-read it once they hold the item's lock).
    func item(id: String) async throws -> ProtectedItem {
        guard let item = try await catalog.item(id: id) else { throw CoffreError(.notProtected, "The protected item \(id) is gone") }
        return item
    }

    static func makeItemID() -> String {
        "item-" + String(UInt64.random(in: 1...UInt64.max), radix: 16)
    }

    /// `2026-11-22 10:15:30 UTC`.
    public static func instant(_ date: Date) -> String {
        instantFormatter().string(from: date)
    }

    /// The date `instant(_:)` wrote.
    static func parseInstant(_ text: String) -> Date? {
        instantFormatter().date(from: text)
    }

    private static func instantFormatter() -> DateFormatter {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
        return formatter
    }

    static func day(_ date: Date?) -> String {
        date.map { String(instant($0).prefix(10)) } ?? "?"
    }
}
