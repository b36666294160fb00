public import CoffreCore
import Foundation

/// The dashboard's numbers (J1).
public struct Dashboard: Codable, Sendable, Equatable {
    /// VMs under an active policy, pending initial backup included.
    public var protectedVMs: Int
    public var pendingInitialBackup: Int
    public var stoppedProtection: Int
    public var softDeleted: Int
    /// Jobs started in the last 24 hours, by outcome.
    public var jobsSucceeded: Int
    public var jobsFailed: Int
    public var jobsInProgress: Int
    /// Waiting for a place on a node.
    public var jobsQueued: Int
    public var jobsCancelled: Int
    /// Points whose latest verification passed, and failed (Verify jobs, any time).
    public var verificationsPassed: Int
    public var verificationsFailed: Int
}

/// A protected item with what a person wants to see next to it.
public struct ItemSummary: Codable, Sendable, Equatable {
    public var item: ProtectedItem
    /// `Protected`, `Protected (pending initial backup)`, `Protection stopped (data retained)`,
    /// `Soft deleted (purge after …)`.
    public var status: String
    public var pointCount: Int
    public var lastPoint: RecoveryPointRecord?
}

/// What `/metrics` reads at each scrape: each protected item, and the jobs running and queued
/// on every node.
public struct Monitoring: Sendable, Equatable {
    public struct Item: Sendable, Equatable {
        public var vm: VMKey
        /// Backed up on a schedule (protected, or being configured); not stopped or soft-deleted.
        public var scheduled: Bool
        public var points: Int
        /// When its newest point was taken: its last successful backup.
        public var lastPointAt: Date?
        /// What its live points wrote to the vault when each was taken (new chunks, compressed).
        public var addedBytes: Int64
    }

    public var items: [Item]
    /// Jobs in progress now, on every node, by type (every type present, 0 included).
    public var running: [JobType: Int]
    /// Jobs waiting for a node's place now, by type (every type present, 0 included).
    public var queued: [JobType: Int]
    /// What the vault can still take; nil when its store cannot tell (S3).
    public var availableBytes: Int64?
}

/// What the API and the dashboard read: the catalog's records, counted and summed (J1), and
/// VMs resolved from what a person types. It writes nothing and runs no job.
public struct ReadModel: Sendable {
    let catalog: any Catalog
    let store: any PointStore
    let clock: any TimeSource
    /// The vault's region: only its VMs are offered for registration (R3).
    let region: String

    public func dashboard() async throws -> Dashboard {
        let itemsAndPoints = try await summariesWithPoints()
        let summaries = itemsAndPoints.map(\.summary)
        let verifications = itemsAndPoints.flatMap { $0.points.compactMap { $0.verification?.succeeded } }
        let jobs = try await catalog.jobs(JobFilter(since: clock.now().addingTimeInterval(-24 * 3600)))
        func count(_ status: JobStatus) -> Int { jobs.filter { $0.status == status }.count }
        return Dashboard(
            protectedVMs: summaries.filter { $0.item.state == .protected || $0.item.state == .configuring }.count,
            pendingInitialBackup: summaries.filter { $0.item.state == .protected && $0.pointCount == 0 }.count,
            stoppedProtection: summaries.filter { $0.item.state == .stopped }.count,
            softDeleted: summaries.filter { $0.item.state == .softDeleted }.count,
            jobsSucceeded: count(.succeeded), jobsFailed: count(.failed),
            jobsInProgress: count(.inProgress), jobsQueued: count(.queued), jobsCancelled: count(.cancelled),
            verificationsPassed: verifications.filter { $0 }.count, verificationsFailed: verifications.filter { !$0 }.count)
    }

    public func itemSummaries() async throws -> [ItemSummary] {
        try await summariesWithPoints().map(\.summary)
    }

    /// Each item's summary, and its points (read once).
    private func summariesWithPoints() async throws -> [(summary: ItemSummary, points: [RecoveryPointRecord])] {
        var summaries: [(summary: ItemSummary, points: [RecoveryPointRecord])] = []
        for item in try await catalog.items() {
            let points = try await catalog.points(item: item.id)
            let status = switch item.state {
            case .configuring: "Configuring protection"
            case .protected: points.isEmpty ? "Protected (pending initial backup)" : "Protected"
            case .stopped: "Protection stopped (data retained)"
            case .softDeleted: "Soft deleted (purge after \(Engine.day(item.purgeAfter)))"
            }
            summaries.append((ItemSummary(item: item, status: status, pointCount: points.count, lastPoint: points.last), points))
        }
        return summaries
    }

    /// A VM's recovery points with the vault's block accounting (K2), oldest first.
    public func points(of name: String) async throws -> (item: ProtectedItem, points: [RecoveryPointRecord], accounting: [String: PointAccounting]) {
        let key = try await resolveVM(name).key
        guard let item = try await catalog.item(for: key) else { throw CoffreError.notProtected(key) }
        return (item, try await catalog.points(item: item.id), try await store.accounting())
    }

    public func jobs(_ filter: JobFilter) async throws -> [Job] { try await catalog.jobs(filter) }

    /// Bytes the point store holds, for `/metrics` (measured on the store's threads).
    public func storedBytes() async throws -> Int64 { try await store.storedBytes() }

    /// The newest copy of the catalog in the vault (decision 0030), for `/metrics`.
    public func newestCatalogCopy() async throws -> StoredCatalogCopy? { try await store.catalogCopies().last }

    public func monitoring() async throws -> Monitoring {
        let items = try await summariesWithPoints().map { summary, points in
            Monitoring.Item(
                vm: summary.item.vm, scheduled: summary.item.state == .protected || summary.item.state == .configuring,
                points: summary.pointCount, lastPointAt: points.map(\.takenAt).max(),
                addedBytes: points.reduce(0) { $0 + $1.stats.bytesWritten })
        }
        func count(_ status: JobStatus) async throws -> [JobType: Int] {
            let jobs = try await catalog.jobs(JobFilter(status: status))
            return Dictionary(uniqueKeysWithValues: JobType.allCases.map { type in (type, jobs.count { $0.type == type }) })
        }
        return Monitoring(items: items, running: try await count(.inProgress), queued: try await count(.queued),
                          availableBytes: try await store.availableBytes())
    }

    /// Jobs matching a query as typed; an unknown type or status, a bad date or an unknown
    /// VM is an error naming what is accepted.
    public func jobs(matching query: JobQuery) async throws -> [Job] {
        var filter = JobFilter(limit: query.limit)
        if let limit = query.limit, limit <= 0 {
            throw CoffreError(.invalidFilter, "'limit' must be a positive integer, not \(limit)")
        }
        if let type = query.type {
            guard let parsed = JobType(parsing: type) else {
                throw CoffreError(.invalidFilter, "Unknown job type '\(type)'",
                                  workaround: "Use one of \(JobType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            filter.type = parsed
        }
        if let status = query.status {
            guard let parsed = JobStatus(parsing: status) else {
                throw CoffreError(.invalidFilter, "Unknown job status '\(status)'",
                                  workaround: "Use one of \(JobStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            filter.status = parsed
        }
        if let since = query.since { filter.since = try DateText.since(since, now: clock.now()) }
        if let vm = query.vm { filter.vm = try await resolveVM(vm).key }
        return try await catalog.jobs(filter)
    }

    public func job(_ id: String) async throws -> Job {
        guard let job = try await catalog.job(id: id) else { throw CoffreError.jobNotFound(id) }
        return job
    }

    // MARK: Naming VMs

    /// The VM a user means by `name` or `cloudService/name` (R3: same names told apart by cloud service).
    public func resolveVM(_ text: String) async throws -> VMRecord {
        let key = VMKey(parsing: text)
        let all = try await catalog.vms()
        if text.contains("/") {
            guard let record = all.first(where: { $0.key == key }) else { throw CoffreError.vmNotFound(text) }
            return record
        }
        let matches = all.filter { $0.vm.name == text }
        switch matches.count {
        case 0: throw CoffreError.vmNotFound(text)
        case 1: return matches[0]
        default:
            // A vanished twin does not make a present VM ambiguous.
            let present = matches.filter { $0.presence == .present }
            if present.count == 1 { return present[0] }
            throw CoffreError.ambiguousVMName(text, candidates: matches.map(\.key))
        }
    }

    /// Lists VMs; `unregistered` offers only those registration accepts: not yet registered,
    /// present, in the vault's region (R3).
    public func vms(unregistered: Bool = false) async throws -> [VMRecord] {
        let all = try await catalog.vms()
        guard unregistered else { return all }
        return all.filter {
            $0.registration != .registered && $0.presence == .present && $0.vm.region == region
        }
    }
}

/// The read model's queries, on the engine the application holds.
extension Engine {
    public func dashboard() async throws -> Dashboard { try await reads.dashboard() }
    public func itemSummaries() async throws -> [ItemSummary] { try await reads.itemSummaries() }
    public func points(of name: String) async throws -> (item: ProtectedItem, points: [RecoveryPointRecord], accounting: [String: PointAccounting]) {
        try await reads.points(of: name)
    }
    public func jobs(_ filter: JobFilter) async throws -> [Job] { try await reads.jobs(filter) }
    public func jobs(matching query: JobQuery) async throws -> [Job] { try await reads.jobs(matching: query) }
    public func job(_ id: String) async throws -> Job { try await reads.job(id) }
    public func storedBytes() async throws -> Int64 { try await reads.storedBytes() }
    public func newestCatalogCopy() async throws -> StoredCatalogCopy? { try await reads.newestCatalogCopy() }
    public func monitoring() async throws -> Monitoring { try await reads.monitoring() }
    public func resolveVM(_ text: String) async throws -> VMRecord { try await reads.resolveVM(text) }
    public func vms(unregistered: Bool = false) async throws -> [VMRecord] { try await reads.vms(unregistered: unregistered) }
}
