public import CoffreCore
import Foundation
public import Logging
import Synchronization

/// The vault service: discovery, registration, protection, the scheduler, the job runner,
/// backup and restore, retention and soft delete.
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
        /// How often `run()` looks for queued jobs to claim (and at once when one of its jobs ends).
        public var claimInterval: Duration = .seconds(1)
        /// This build's version, as nodes announce it.
        public var version = "unknown"

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
    let isOwnerAlive: @Sendable (String) -> Bool
    /// The other nodes sharing the catalog, and the leader lease (nil: this engine is alone
    /// and leads).
    public let coordinator: (any NodeCoordinator)?
    let leader = Mutex(LeaderState())
    let nodeAddress = Mutex("")
    let startedAt: Date
    let logger: Logger
    let running = Mutex<[String: RunningJob]>([:])
    let claims = Mutex(ClaimState())
    /// Own jobs the catalog showed in progress that this engine did not run, at the last check.
    let unaccounted = Mutex<Set<String>>([])
    /// Ticks since the last sweep for uncommitted points.
    let orphanSweep = Mutex(0)
    /// The one run of `start()`: the CLI starts the engine it assembles, and `run()` (under
    /// `coffre serve`) starts it too.
    private let startup = Mutex<Task<Void, any Error>?>(nil)

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
        self.startedAt = clock.now()
        self.fileBrowser = fileBrowser
        self.configuration = configuration
        self.catalog = catalog
        self.store = store
        self.fabrics = fabrics
        self.clock = clock
        self.owner = owner
        self.isOwnerAlive = isOwnerAlive
        self.logger = logger
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
            $0.registration != .registered && $0.presence == .present && $0.vm.region == configuration.region
        }
    }
}
