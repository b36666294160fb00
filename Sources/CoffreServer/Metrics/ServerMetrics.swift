import CoffreCore
import CoffreEngine
import Foundation
import Prometheus
import Synchronization

/// What `/metrics` shows, in Prometheus's text format: jobs as they end (counted from the
/// catalog, so every node's jobs, once each), jobs running and queued, the vault's stored and
/// available bytes, when the newest catalog copy was taken, and per protected item its last successful backup, points and bytes.
///
/// Every metric has its HELP text, base units in its name and `_total` on counters, so that
/// `promtool check metrics` finds nothing to lint (the CLI tests check a live server's).
/// `update()` runs before each answer, so a scrape sees the catalog as it is.
final class ServerMetrics: Sendable {
    let engine: Engine
    let registry: PrometheusCollectorRegistry
    private let state: Mutex<State>

    private struct State {
        /// Jobs started before this are all finished and counted (or ended before `since`).
        var watermark: Date
        /// Jobs already counted, among those started at or after `watermark`.
        var counted: Set<String> = []
        /// When this server started: jobs that ended before are not counted.
        let since: Date
        /// When the vault was last measured (wall clock).
        var measuredAt: Date?
        /// A measurement is under way: other scrapes show the last value meanwhile.
        var measuring = false
        /// The items that have per-item series, by their `vm` label.
        var items: Set<String> = []
    }

    /// Each metric's name and HELP text (one text per name, as the registry requires).
    enum Name {
        static let jobs = ("coffre_jobs_total", "Jobs that ended since this server started, by type and outcome; every node's jobs are counted")
        static let readBytes = ("coffre_read_bytes_total", "Bytes the jobs that ended since this server started read: backups from disks, restores and verifications from the vault")
        static let writtenBytes = ("coffre_written_bytes_total", "Bytes the jobs that ended since this server started wrote: backups to the vault (new chunks, compressed), restores to disks")
        static let backupDuration = ("coffre_backup_duration_seconds", "How long the backups that succeeded since this server started took, from queued to ended")
        static let running = ("coffre_jobs_running", "Jobs in progress now on every node, by type")
        static let queued = ("coffre_jobs_queued", "Jobs waiting for a place on a node now, by type")
        static let stored = ("coffre_vault_stored_bytes", "Bytes the vault's store holds: packs, chunk index and manifests")
        static let available = ("coffre_vault_available_bytes", "Free space of the file system of a local vault; absent for a vault on S3")
        static let lastBackup = ("coffre_item_last_backup_timestamp_seconds", "When the newest recovery point of a protected item was taken (its last successful backup), in Unix time")
        static let points = ("coffre_item_points", "Recovery points a protected item has")
        static let addedBytes = ("coffre_item_added_bytes", "Bytes a protected item's recovery points wrote to the vault when each was taken (new chunks, compressed)")
        static let itemStored = ("coffre_item_stored_bytes", "Stored bytes (data and index, compressed) that only a protected item's recovery points reference: what deleting its backup data frees once collected")
        static let scheduled = ("coffre_item_scheduled", "1 when a protected item is backed up on its policy's schedule, 0 when its protection is stopped or its data soft-deleted")
        static let catalogCopy = ("coffre_catalog_copy_timestamp_seconds", "When the newest copy of the catalog in the vault was taken, in Unix time (one is written after every job that changes the catalog, and daily)")
        static let build = ("coffre_build_info", "The coffre version serving these metrics")
    }

    init(engine: Engine, registry: PrometheusCollectorRegistry) {
        self.engine = engine
        self.registry = registry
        let now = engine.clock.now()
        self.state = Mutex(State(watermark: now.addingTimeInterval(-86_400), since: now))
        gauge(Name.build, [("version", engine.configuration.version)]).set(Int64(1))
    }

    /// Counts the jobs that ended since the last call, reads what is running and each item's
    /// state, and measures the vault now and then.
    func update() async {
        await countEndedJobs()
        if let now = try? await engine.monitoring() { record(now) }
        await measureVault()
    }

    /// The metrics in Prometheus's text format.
    func exposition() -> String { registry.emitToString() }

    // MARK: Jobs that ended

    private func countEndedJobs() async {
        let now = engine.clock.now()
        let watermark = state.withLock { $0.watermark }
        guard let jobs = try? await engine.jobs(JobFilter(since: watermark)) else { return }
        let ended = state.withLock { state in
            var ended: [Job] = []
            for job in jobs where job.status.isFinished && !state.counted.contains(job.id) {
                state.counted.insert(job.id)
                if let end = job.endedAt, end >= state.since { ended.append(job) }
            }
            // Move the watermark to the oldest job still running, but keep five minutes
            // behind: a job is stamped before it is inserted, so a late insert stays in view.
            let oldestRunning = jobs.filter { !$0.status.isFinished }.map(\.startedAt).min()
            let newest = jobs.map(\.startedAt).max() ?? state.watermark
            state.watermark = max(state.watermark, min(oldestRunning ?? newest, now.addingTimeInterval(-300)))
            let keep = Set(jobs.filter { $0.startedAt >= state.watermark }.map(\.id))
            state.counted.formIntersection(keep)
            return ended
        }
        if !ended.isEmpty { state.withLock { $0.measuredAt = nil } }  // the vault changed: measure again
        for job in ended { record(job) }
    }

    private func record(_ job: Job) {
        let type = [("type", job.type.rawValue)]
        counter(Name.jobs, type + [("status", job.status.rawValue)]).increment()
        if job.progress.readBytes > 0 { counter(Name.readBytes, type).increment(by: job.progress.readBytes) }
        if job.progress.writtenBytes > 0 { counter(Name.writtenBytes, type).increment(by: job.progress.writtenBytes) }
        if job.type == .backup, job.status == .succeeded, let end = job.endedAt {
            registry.makeDurationHistogram(name: Name.backupDuration.0, labels: [], buckets: Self.backupBuckets,
                                           help: Name.backupDuration.1)
                .record(.nanoseconds(Int64(end.timeIntervalSince(job.startedAt) * 1e9)))
        }
    }

    private static let backupBuckets: [Duration] = [
        .seconds(1), .seconds(5), .seconds(15), .seconds(60), .seconds(300), .seconds(900),
        .seconds(3600), .seconds(4 * 3600), .seconds(12 * 3600),
    ]

    // MARK: Now

    private func record(_ now: Monitoring) {
        for type in JobType.allCases {
            gauge(Name.running, [("type", type.rawValue)]).set(Int64(now.running[type] ?? 0))
            gauge(Name.queued, [("type", type.rawValue)]).set(Int64(now.queued[type] ?? 0))
        }
        if let available = now.availableBytes { gauge(Name.available, []).set(available) }
        var present: Set<String> = []
        for item in now.items {
            let vm = [("vm", item.vm.description)]
            present.insert(item.vm.description)
            gauge(Name.points, vm).set(Int64(item.points))
            gauge(Name.addedBytes, vm).set(item.addedBytes)
            gauge(Name.scheduled, vm).set(Int64(item.scheduled ? 1 : 0))
            if let last = item.lastPointAt {
                gauge(Name.lastBackup, vm).set(last.timeIntervalSince1970)
            } else {
                registry.unregisterGauge(gauge(Name.lastBackup, vm))
            }
        }
        // Items that are gone (purged) lose their series.
        let gone = state.withLock { state in
            defer { state.items = present }
            return state.items.subtracting(present)
        }
        for vm in gone {
            for name in [Name.points, Name.addedBytes, Name.itemStored, Name.scheduled, Name.lastBackup] {
                registry.unregisterGauge(gauge(name, [("vm", vm)]))
            }
        }
    }

    /// Measuring the vault walks its objects (on the store's threads): again only when a job
    /// ended (backups, purges change it) or every five minutes (retention runs between jobs),
    /// and one scrape at a time.
    private func measureVault() async {
        let due = state.withLock { state in
            let due = !state.measuring && (state.measuredAt.map { Date().timeIntervalSince($0) > 300 } ?? true)
            if due {
                state.measuredAt = Date()
                state.measuring = true
            }
            return due
        }
        guard due else { return }
        if let bytes = try? await engine.storedBytes() { gauge(Name.stored, []).set(bytes) }
        if let copy = try? await engine.newestCatalogCopy() { gauge(Name.catalogCopy, []).set(copy.takenAt.timeIntervalSince1970) }
        // Per item, from the vault's accounting: it changes only with points, like the stored bytes.
        for row in (try? await engine.itemStorage()) ?? [] {
            gauge(Name.itemStored, [("vm", row.vm.description)]).set(row.bytesOnlyHere)
        }
        state.withLock { $0.measuring = false }
    }

    // MARK: Instruments

    private func counter(_ name: (String, String), _ labels: [(String, String)]) -> Counter {
        registry.makeCounter(name: name.0, labels: labels, help: name.1)
    }

    private func gauge(_ name: (String, String), _ labels: [(String, String)]) -> Gauge {
        registry.makeGauge(name: name.0, labels: labels, help: name.1)
    }
}
