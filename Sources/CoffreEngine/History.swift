public import CoffreCore
public import Foundation

// What the dashboard's charts draw (issue 19), computed from the catalog: the same values the
// API returns under /api/v1/history and the SVG marks carry.

/// The vault's stored bytes against the bytes its points represent, one sample per day.
public struct StorageHistory: Codable, Sendable, Equatable {
    /// The samples of the last `days` days, oldest first.
    public var samples: [VaultSample]
    /// Stored bytes of the newest sample minus those of the newest sample at least 7 (30) days
    /// older; nil when there is no sample that old.
    public var growth7Days: Int64?
    public var growth30Days: Int64?

    public init(samples: [VaultSample], growth7Days: Int64?, growth30Days: Int64?) {
        self.samples = samples
        self.growth7Days = growth7Days
        self.growth30Days = growth30Days
    }
}

/// Backup jobs started on one UTC day, by how they ended (running and queued ones are not counted).
public struct JobDay: Codable, Sendable, Equatable {
    public var day: String
    public var succeeded: Int
    public var failed: Int
    public var cancelled: Int

    public init(day: String, succeeded: Int = 0, failed: Int = 0, cancelled: Int = 0) {
        self.day = day
        self.succeeded = succeeded
        self.failed = failed
        self.cancelled = cancelled
    }

    public var total: Int { succeeded + failed + cancelled }
}

/// One protected item over a period: its points, the schedule slots that produced none, and
/// its backups' durations and sizes.
public struct ItemHistory: Codable, Sendable, Equatable {
    public struct Mark: Codable, Sendable, Equatable {
        public var id: String
        public var takenAt: Date
        public var consistency: Consistency
        public var type: PointType

        public init(id: String, takenAt: Date, consistency: Consistency, type: PointType) {
            self.id = id
            self.takenAt = takenAt
            self.consistency = consistency
            self.type = type
        }
    }

    public struct Run: Codable, Sendable, Equatable {
        public var job: String
        public var startedAt: Date
        public var seconds: Double
        /// Bytes read from the disks, and written to the vault (new chunks, compressed).
        public var readBytes: Int64
        public var writtenBytes: Int64
        public var status: JobStatus

        public init(job: String, startedAt: Date, seconds: Double, readBytes: Int64, writtenBytes: Int64, status: JobStatus) {
            self.job = job
            self.startedAt = startedAt
            self.seconds = seconds
            self.readBytes = readBytes
            self.writtenBytes = writtenBytes
            self.status = status
        }
    }

    public var vm: VMKey
    public var from: Date
    public var to: Date
    /// Live points taken in the period, oldest first.
    public var points: [Mark]
    /// Slots of the policy's schedule in the period, whose window (until the next slot) is over,
    /// in which no scheduled point was taken. None for an item that is not protected now.
    public var missedSlots: [Date]
    /// Backup jobs of the item started in the period that ended, oldest first.
    public var backups: [Run]

    public init(vm: VMKey, from: Date, to: Date, points: [Mark], missedSlots: [Date], backups: [Run]) {
        self.vm = vm
        self.from = from
        self.to = to
        self.points = points
        self.missedSlots = missedSlots
        self.backups = backups
    }
}

/// What one protected item's points alone hold in the vault (from the vault's accounting).
public struct ItemStorage: Codable, Sendable, Equatable {
    public var vm: VMKey
    public var points: Int
    public var bytesOnlyHere: Int64
    public var blocksOnlyHere: Int

    public init(vm: VMKey, points: Int, bytesOnlyHere: Int64, blocksOnlyHere: Int) {
        self.vm = vm
        self.points = points
        self.bytesOnlyHere = bytesOnlyHere
        self.blocksOnlyHere = blocksOnlyHere
    }
}

extension ReadModel {
    /// The vault samples of the last `days` days (`days` 1–400), with the growth of 7 and 30 days.
    public func storageHistory(days: Int) async throws -> StorageHistory {
        try Self.checkDays(days)
        return Self.storageHistory(try await catalog.vaultSamples(), days: days, now: clock.now())
    }

    static func storageHistory(_ all: [VaultSample], days: Int, now: Date) -> StorageHistory {
        let first = VaultSample.day(of: now.addingTimeInterval(-Double(days - 1) * 86_400))
        func growth(_ span: Int) -> Int64? {
            guard let newest = all.last, let date = newest.date else { return nil }
            let before = VaultSample.day(of: date.addingTimeInterval(-Double(span) * 86_400))
            return all.last { $0.day <= before }.map { newest.storedBytes - $0.storedBytes }
        }
        return StorageHistory(samples: all.filter { $0.day >= first }, growth7Days: growth(7), growth30Days: growth(30))
    }

    /// Backup jobs per UTC day for the last `days` days, today last, days without any included.
    public func backupDays(days: Int) async throws -> [JobDay] {
        try Self.checkDays(days)
        let now = clock.now()
        let start = try Self.startOfDay(now.addingTimeInterval(-Double(days - 1) * 86_400))
        let jobs = try await catalog.jobs(JobFilter(type: .backup, since: start))
        return Self.backupDays(jobs, days: days, now: now)
    }

    static func backupDays(_ jobs: [Job], days: Int, now: Date) -> [JobDay] {
        var byDay = Dictionary(uniqueKeysWithValues: (0..<days).map { offset in
            let day = VaultSample.day(of: now.addingTimeInterval(-Double(days - 1 - offset) * 86_400))
            return (day, JobDay(day: day))
        })
        for job in jobs where job.type == .backup {
            let day = VaultSample.day(of: job.startedAt)
            switch job.status {
            case .succeeded: byDay[day]?.succeeded += 1
            case .failed: byDay[day]?.failed += 1
            case .cancelled: byDay[day]?.cancelled += 1
            case .queued, .inProgress: break
            }
        }
        return byDay.values.sorted { $0.day < $1.day }
    }

    /// A protected VM's points, missed slots and backups over the last `days` days.
    public func itemHistory(of name: String, days: Int) async throws -> ItemHistory {
        try Self.checkDays(days)
        let record = try await resolveVM(name)
        guard let item = try await catalog.item(for: record.key) else { throw CoffreError.notProtected(record.key) }
        let now = clock.now()
        let from = now.addingTimeInterval(-Double(days) * 86_400)
        let jobs = try await catalog.jobs(JobFilter(type: .backup, vm: item.vm, since: from))
        return Self.itemHistory(item: item, policy: try await catalog.policy(named: item.policy),
                                points: try await catalog.points(item: item.id), jobs: jobs, from: from, to: now)
    }

    static func itemHistory(item: ProtectedItem, policy: Policy?, points: [RecoveryPointRecord], jobs: [Job],
                            from: Date, to now: Date) -> ItemHistory {
        let inPeriod = points.filter { $0.takenAt >= from && $0.takenAt <= now }
        var missed: [Date] = []
        if item.state == .protected, let schedule = policy?.schedule {
            let scheduled = inPeriod.filter { $0.type == .scheduled }.map(\.takenAt)
            var slot = schedule.nextSlot(after: max(from, item.protectedAt))
            while let start = slot, start < now, let end = schedule.nextSlot(after: start), end <= now {
                if !scheduled.contains(where: { $0 >= start && $0 < end }) { missed.append(start) }
                slot = end
            }
        }
        let runs = jobs.filter { $0.type == .backup && $0.status.isFinished && $0.startedAt >= from }
            .sorted { ($0.startedAt, $0.id) < ($1.startedAt, $1.id) }
            .map { job in
                ItemHistory.Run(job: job.id, startedAt: job.startedAt,
                                seconds: max(0, (job.endedAt ?? job.startedAt).timeIntervalSince(job.startedAt)),
                                readBytes: job.progress.readBytes, writtenBytes: job.progress.writtenBytes, status: job.status)
            }
        return ItemHistory(
            vm: item.vm, from: from, to: now,
            points: inPeriod.map { ItemHistory.Mark(id: $0.id, takenAt: $0.takenAt, consistency: $0.consistency, type: $0.type) },
            missedSlots: missed, backups: runs)
    }

    /// Every protected item with the bytes only its points hold, the largest first.
    public func itemStorage() async throws -> [ItemStorage] {
        let held = try await store.itemAccounting()
        var rows: [ItemStorage] = []
        for item in try await catalog.items() {
            let accounting = held[item.id] ?? ItemAccounting(blocksOnlyHere: 0, bytesOnlyHere: 0)
            rows.append(ItemStorage(vm: item.vm, points: try await catalog.points(item: item.id).count,
                                    bytesOnlyHere: accounting.bytesOnlyHere, blocksOnlyHere: accounting.blocksOnlyHere))
        }
        return rows.sorted { ($1.bytesOnlyHere, $0.vm.description) < ($0.bytesOnlyHere, $1.vm.description) }
    }

    static func checkDays(_ days: Int) throws {
        guard (1...400).contains(days) else {
            throw CoffreError(.invalidFilter, "'days' must be between 1 and 400, not \(days)")
        }
    }

    static func startOfDay(_ date: Date) throws -> Date {
        guard let start = VaultSample.start(ofDay: VaultSample.day(of: date)) else {
            throw CoffreError(.internalError, "No start of day for \(date)")
        }
        return start
    }
}

extension VaultSample {
    /// The start of its day (UTC).
    public var date: Date? { Self.start(ofDay: day) }

    /// The start (UTC) of a day written `2026-12-06`; nil for anything else.
    public static func start(ofDay day: String) -> Date? {
        let characters = Array(day)
        guard characters.count == 10, characters[4] == "-", characters[7] == "-" else { return nil }
        return parseCompactTimestamp(day.replacingOccurrences(of: "-", with: "") + "T000000")
    }
}

extension Engine {
    public func storageHistory(days: Int) async throws -> StorageHistory { try await reads.storageHistory(days: days) }
    public func backupDays(days: Int) async throws -> [JobDay] { try await reads.backupDays(days: days) }
    public func itemHistory(of name: String, days: Int) async throws -> ItemHistory { try await reads.itemHistory(of: name, days: days) }
    public func itemStorage() async throws -> [ItemStorage] { try await reads.itemStorage() }

    /// Measures the vault (one listing of the store, the catalog's points) and records the
    /// day's sample, keeping `historyDays` days.
    public func sampleVault() async throws {
        let now = clock.now()
        let stored = try await store.storedBytes()
        var logical: Int64 = 0
        for item in try await catalog.items() {
            for point in try await catalog.points(item: item.id) { logical += point.disks.reduce(0) { $0 + $1.size } }
        }
        try await catalog.recordVaultSample(
            VaultSample(day: VaultSample.day(of: now), takenAt: now, storedBytes: stored, logicalBytes: logical),
            keepingDays: configuration.historyDays)
        lastVaultSample.withLock { $0 = now }
    }

    /// Samples the vault unless this engine did within `minimumAge` (the leader's schedule:
    /// an hour). Failures are logged: history is informational.
    func sampleVaultIfOlder(than minimumAge: TimeInterval) async {
        if let last = lastVaultSample.withLock({ $0 }), clock.now().timeIntervalSince(last) < minimumAge,
           VaultSample.day(of: last) == VaultSample.day(of: clock.now()) { return }
        await sampleVaultLogging()
    }

    /// After a change of the vault (a backup, a purge, retention): a sample now, or — when this
    /// engine took one less than a minute ago — one a minute after that one, so that a burst of
    /// backups lists the store once a minute, and the last of them is always measured.
    func vaultChanged() async {
        let wait: TimeInterval? = vaultSampleDeferred.withLock { deferred in
            guard let last = lastVaultSample.withLock({ $0 }) else { return 0 }
            let age = clock.now().timeIntervalSince(last)
            if age >= 60 { return 0 }
            if deferred { return nil }  // one is already due
            deferred = true
            return 60 - age
        }
        guard let wait else { return }
        if wait <= 0 { return await sampleVaultLogging() }
        Task { [weak self] in
            try? await Task.sleep(for: .seconds(wait))
            guard let self else { return }
            self.vaultSampleDeferred.withLock { $0 = false }
            await self.sampleVaultLogging()
        }
    }

    private func sampleVaultLogging() async {
        do {
            try await sampleVault()
        } catch {
            logger.warning("the vault could not be measured for its history: \(error)")
        }
    }
}
