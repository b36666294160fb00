public import CoffreCore
import Foundation
public import Logging
import Synchronization

/// The vault service: discovery, registration, protection, the scheduler, the job runner,
/// backup and restore, retention and soft delete.
///
/// It is assembled from parts that each do one thing (decision 0026): a `JobRunner` (records,
/// claims, runs and cancels jobs), `Membership` (heartbeats, the leader lease), a `Scheduler`
/// (which slots are due, what the leader does each tick; no I/O), the backup, restore and
/// verification pipelines, and the `ReadModel` the API and the dashboard read. The engine holds
/// the operations that tie them to the catalog, the store and the fabrics.
///
/// The engine sees only protocols — a `Catalog`, a `PointStore`, `Fabric`s and a `TimeSource` —
/// and is assembled where the application starts (the CLI, the server, tests). Every
/// operation on an item is a `Job` recorded in the catalog; at most one runs per item (B6).
public final class Engine: Sendable {
    /// Settings with the product's defaults.
    public struct Configuration: Sendable {
        /// The vault's region: only VMs of this region are offered and registered (R3).
        public var region: String
        /// Data disks a VM may have to be registered (R4; Azure's preview allowed 5).
        public var maxDataDisks = 16
        /// The oldest VM agent version registration accepts.
        public var minimumAgentVersion = "1.0"
        /// How long installing the extension may take (R4 `ExtensionInstallTimeout`).
        public var installTimeout: Duration = .seconds(120)
        /// How long guest preparation plus the snapshot may take (`SnapshotTimeout`).
        public var snapshotTimeout: Duration = .seconds(600)
        /// How long copying a VM's disks into the vault may take (`BackupCopyTimeout`).
        public var copyTimeout: Duration = .seconds(24 * 3600)
        /// Days soft-deleted backup data is kept before it is purged (K4).
        public var softDeleteDays = 14
        /// Days an on-demand point is kept when no date is given (B5).
        public var onDemandRetentionDays = 30
        /// How often a running job saves its progress and looks for a cancel request.
        public var monitorInterval: Duration = .milliseconds(500)
        /// How often `run()` looks for due backups and expired points.
        public var tickInterval: Duration = .seconds(30)
        /// With a coordinator: how long the leader lease and a node's heartbeat last. Another
        /// node takes over within about this plus `heartbeatInterval` when the leader dies.
        public var leaderLease: Duration = .seconds(15)
        /// With a coordinator: how often a node heartbeats and claims or renews the lease.
        public var heartbeatInterval: Duration = .seconds(5)
        /// Nodes silent for longer are no longer listed.
        public var nodeForgetAfter: Duration = .seconds(24 * 3600)
        /// Backups this node runs at once; more wait queued (coffre.json `maxConcurrentBackups`).
        public var maxConcurrentBackups = 4
        /// Backups a fabric runs at once on every node together, by fabric name; a fabric not
        /// listed has no limit but the nodes' (coffre.json, a fabric's `maxConcurrentBackups`).
        public var fabricBackupLimits: [String: Int] = [:]
        /// Verifications this node runs at once; more wait queued (coffre.json
        /// `maxConcurrentVerifications`). Boot checks are also one at a time per fabric.
        public var maxConcurrentVerifications = 2
        /// How often `run()` looks for queued jobs to claim (and at once when one of its jobs ends).
        public var claimInterval: Duration = .seconds(1)
        /// This build's version, as nodes announce it.
        public var version = "unknown"
        /// A copy of the catalog goes into the vault after every job that changes it, and at
        /// least this often (the leader's schedule); nil: no copies (decision 0030).
        public var catalogCopyInterval: Duration? = .seconds(24 * 3600)
        /// A catalog copy holds the finished jobs of these last days (and those that made a point).
        public var catalogCopyJobDays = 31
        /// Days of vault samples the catalog keeps for the storage chart.
        public var historyDays = 400

        public init(region: String) {
            self.region = region
        }
    }

    public let configuration: Configuration
    public let catalog: any Catalog
    public let store: any PointStore
    public let fabrics: [any Fabric]
    public let clock: any TimeSource
    /// Reads points' files for the API and the dashboard (nil: this engine reads none).
    public let fileBrowser: (any PointFileBrowser)?
    /// This engine instance's name as a job owner.
    public let owner: String
    /// The other nodes sharing the catalog, and the leader lease (nil: this engine is alone
    /// and leads).
    public let coordinator: (any NodeCoordinator)?
    let logger: Logger
    /// This node's heartbeats and leadership among the nodes sharing the catalog.
    let membership: Membership
    /// Records, claims, runs and cancels this engine's jobs.
    let runner: JobRunner
    /// The leader's duties, tick by tick (only the leader's engine ticks them).
    let scheduler = Mutex(Scheduler())
    /// What the API and the dashboard read.
    public let reads: ReadModel
    /// The one run of `start()`: the CLI starts the engine it assembles, and `run()` (under
    /// `coffre serve`) starts it too.
    private let startup = Mutex<Task<Void, any Error>?>(nil)
    /// Writes the catalog's copies into the vault, one at a time.
    let catalogCopier = CatalogCopier()
    /// When this engine last wrote a catalog copy (nil: not yet known).
    let lastCatalogCopy = Mutex<Date?>(nil)
    /// When this engine last measured the vault for its history (nil: not yet).
    let lastVaultSample = Mutex<Date?>(nil)
    /// A sample is due a minute after the last one (`vaultChanged`).
    let vaultSampleDeferred = Mutex(false)

    /// - Parameters:
    ///   - owner: this instance's name in job records (CoffreSystem's `ProcessIdentity.current`
    ///     for a process).
    ///   - isOwnerAlive: whether the instance named by a job's owner still runs; jobs of dead
    ///     owners are marked interrupted by `recoverInterruptedJobs()` (`ProcessIdentity.isAlive`).
    ///   - coordinator: how this engine meets the other nodes of its catalog (PostgreSQL's);
    ///     nil when it is the only one.
    public init(
        configuration: Configuration, catalog: any Catalog, store: any PointStore, fabrics: [any Fabric],
        clock: any TimeSource = SystemTimeSource(), owner: String,
        isOwnerAlive: @escaping @Sendable (String) -> Bool,
        fileBrowser: (any PointFileBrowser)? = nil,
        coordinator: (any NodeCoordinator)? = nil,
        logger: Logger = Logger(label: "coffre.engine")
    ) {
        self.coordinator = coordinator
        self.fileBrowser = fileBrowser
        self.configuration = configuration
        self.catalog = catalog
        self.store = store
        self.fabrics = fabrics
        self.clock = clock
        self.owner = owner
        self.logger = logger
        self.runner = JobRunner(
            catalog: catalog, clock: clock, owner: owner,
            settings: JobRunner.Settings(
                monitorInterval: configuration.monitorInterval, maxConcurrentBackups: configuration.maxConcurrentBackups,
                fabricBackupLimits: configuration.fabricBackupLimits,
                maxConcurrentVerifications: configuration.maxConcurrentVerifications,
                lease: coordinator.map { _ in (configuration.leaderLease, configuration.heartbeatInterval) }),
            logger: logger)
        self.membership = Membership(
            coordinator: coordinator, owner: owner,
            settings: Membership.Settings(lease: configuration.leaderLease, heartbeat: configuration.heartbeatInterval,
                                          forgetAfter: configuration.nodeForgetAfter, version: configuration.version),
            runner: runner, clock: clock, isOwnerAlive: isOwnerAlive, logger: logger)
        self.reads = ReadModel(catalog: catalog, store: store, clock: clock, region: configuration.region)
        runner.resolveWork { [weak self] job in
            guard let self else {
                return { _ in throw CoffreError(.internalError, "The engine stopped", workaround: "Run the operation again") }
            }
            return self.work(of: job)
        }
        runner.onJobEnded { [weak self] job in
            // Restores and verifications change only their own job's record: the next copy has it.
            guard let self, job.type != .restore, job.type != .verify else { return }
            await self.catalogChanged()
            if job.type == .backup || job.type == .deleteBackupData { await self.vaultChanged() }
        }
    }

    /// Records the configured fabrics and recovers what a killed process left behind. Call it
    /// before using the engine; it runs once: later calls wait for that run (a failed run is
    /// tried again by the next call).
    public func start() async throws {
        let task = startup.withLock { startup in
            if let running = startup { return running }
            let task = Task {
                for fabric in self.fabrics {
                    try await self.catalog.recordFabric(FabricRecord(
                        name: fabric.name, kind: String(describing: type(of: fabric)), region: fabric.region, address: ""))
                }
                try await self.recoverInterruptedJobs()
            }
            startup = task
            return task
        }
        do {
            try await task.value
        } catch {
            startup.withLock { if $0 == task { $0 = nil } }
            throw error
        }
    }

    func fabric(named name: String) throws -> any Fabric {
        guard let fabric = fabrics.first(where: { $0.name == name }) else { throw CoffreError.fabricNotFound(name) }
        return fabric
    }
}
