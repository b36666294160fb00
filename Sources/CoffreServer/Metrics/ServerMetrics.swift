import CoffreCore
import CoffreEngine
import Foundation
import Metrics
import Prometheus
import Synchronization

/// Counts jobs as they end, from the catalog: every job that ends while this server runs is
/// counted once, whichever process ran it.
///
/// `update()` runs before each `/metrics` answer, so a scrape always sees the jobs ended so
/// far; the counters are swift-metrics objects backed by the Prometheus registry.
final class JobMetrics: Sendable {
    let engine: Engine
    let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
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
    }

    init(engine: Engine, registry: PrometheusCollectorRegistry) {
        self.engine = engine
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["coffre_backup_duration_seconds"] = [
            .seconds(1), .seconds(5), .seconds(15), .seconds(60), .seconds(300), .seconds(900),
            .seconds(3600), .seconds(4 * 3600), .seconds(12 * 3600),
        ]
        self.factory = factory
        let now = engine.clock.now()
        self.state = Mutex(State(watermark: now.addingTimeInterval(-86_400), since: now))
    }

    /// Counts the jobs that ended since the last call, and measures the vault.
    func update() async {
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
        for job in ended { record(job) }
        // Measuring the vault walks its objects (on the store's threads): measure again only
        // when a job ended (backups, purges change it) or every five minutes (retention cleanup
        // runs between jobs), and one scrape at a time.
        let measure = state.withLock { state in
            let due = !state.measuring
                && (!ended.isEmpty || state.measuredAt.map { Date().timeIntervalSince($0) > 300 } ?? true)
            if due {
                state.measuredAt = Date()
                state.measuring = true
            }
            return due
        }
        if measure {
            if let bytes = try? await engine.storedBytes() {
                Gauge(label: "coffre_vault_stored_bytes", factory: factory).record(bytes)
            }
            state.withLock { $0.measuring = false }
        }
    }

    private func record(_ job: Job) {
        let labels = [("type", job.type.rawValue), ("status", job.status.rawValue)]
        Counter(label: "coffre_jobs_total", dimensions: labels, factory: factory).increment()
        let typeLabel = [("type", job.type.rawValue)]
        if job.progress.readBytes > 0 {
            Counter(label: "coffre_read_bytes_total", dimensions: typeLabel, factory: factory).increment(by: Int(job.progress.readBytes))
        }
        if job.progress.writtenBytes > 0 {
            Counter(label: "coffre_written_bytes_total", dimensions: typeLabel, factory: factory).increment(by: Int(job.progress.writtenBytes))
        }
        if job.type == .backup, job.status == .succeeded, let end = job.endedAt {
            Metrics.Timer(label: "coffre_backup_duration_seconds", factory: factory)
                .recordNanoseconds(Int64(end.timeIntervalSince(job.startedAt) * 1e9))
        }
    }

    /// The metrics in Prometheus's text format.
    func exposition() -> String { registry.emitToString() }
}
