import ArgumentParser
import CoffreCore
import CoffreEngine
import CoffreLocalFabric
import CoffreMount
#if Libvirt
import CoffreLibvirt
#endif
import CoffreStorage
import CoffreSystem
import Foundation

/// The embedded-default installation in one data folder: `coffre.json` (settings),
/// `catalog.sqlite`, `vault/` (the point store) and `fabric/` (the local fabric's VMs).
struct AppConfiguration: Codable, Sendable {
    var region = "local"
    var maxDataDisks = 16
    var minimumAgentVersion = "1.0"
    var softDeleteDays = 14
    var onDemandRetentionDays = 30
    var installTimeoutSeconds = 120
    var snapshotTimeoutSeconds = 600
    var copyTimeoutSeconds = 24 * 3600
    /// Nodes sharing a PostgreSQL catalog: the leader lease and how often nodes heartbeat.
    var leaderLeaseSeconds = 15
    var heartbeatSeconds = 5
    /// Local fabrics: name and folder (relative to the data folder or absolute).
    var fabrics: [LocalFabricEntry] = [LocalFabricEntry(name: "local", path: "fabric")]
    /// Where the vault keeps its bytes; nil: the folder `vault` of the data folder.
    var vault: VaultBackend?
    /// The catalog: a SQLite file (relative to the data folder) or a postgres:// URL; nil:
    /// `catalog.sqlite` of the data folder.
    var catalog: String?
    /// libvirt hosts (a coffre built with `--traits Libvirt`), see docs/libvirt.md.
    var libvirtFabrics: [LibvirtFabricEntry] = []

    struct LocalFabricEntry: Codable, Sendable {
        var name: String
        var path: String
        var region: String?
    }

    struct LibvirtFabricEntry: Codable, Sendable {
        var name: String
        /// `qemu:///system`, `qemu+ssh://root@host/system`.
        var uri: String
        var region: String?
        /// Default: the host's name.
        var cloudService: String?
        /// Fleecing scratch files and NBD sockets (default `<data>/libvirt-scratch`).
        var scratchDirectory: String?
        /// Disks of VMs restored as new domains (default `<data>/restored-vms`).
        var restoreDirectory: String?
        /// A statically linked coffre-agent to install in guests; without it guests are
        /// frozen through qemu-guest-agent only (no pre/post scripts).
        var agentBinary: String?
        /// The most an instant restore's background copy moves per second, in MiB (default: no limit).
        var instantCopyMiBPerSecond: Int?
    }

    init() {}

    // Every key is optional in the file: a hand-written `{"region": "eu-west"}` works.
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AppConfiguration()
        region = try c.decodeIfPresent(String.self, forKey: .region) ?? d.region
        maxDataDisks = try c.decodeIfPresent(Int.self, forKey: .maxDataDisks) ?? d.maxDataDisks
        minimumAgentVersion = try c.decodeIfPresent(String.self, forKey: .minimumAgentVersion) ?? d.minimumAgentVersion
        softDeleteDays = try c.decodeIfPresent(Int.self, forKey: .softDeleteDays) ?? d.softDeleteDays
        onDemandRetentionDays = try c.decodeIfPresent(Int.self, forKey: .onDemandRetentionDays) ?? d.onDemandRetentionDays
        installTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .installTimeoutSeconds) ?? d.installTimeoutSeconds
        snapshotTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .snapshotTimeoutSeconds) ?? d.snapshotTimeoutSeconds
        copyTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .copyTimeoutSeconds) ?? d.copyTimeoutSeconds
        leaderLeaseSeconds = try c.decodeIfPresent(Int.self, forKey: .leaderLeaseSeconds) ?? d.leaderLeaseSeconds
        heartbeatSeconds = try c.decodeIfPresent(Int.self, forKey: .heartbeatSeconds) ?? d.heartbeatSeconds
        fabrics = try c.decodeIfPresent([LocalFabricEntry].self, forKey: .fabrics) ?? d.fabrics
        libvirtFabrics = try c.decodeIfPresent([LibvirtFabricEntry].self, forKey: .libvirtFabrics) ?? d.libvirtFabrics
        vault = try c.decodeIfPresent(VaultBackend.self, forKey: .vault)
        catalog = try c.decodeIfPresent(String.self, forKey: .catalog)
    }

    static let fileName = "coffre.json"
}

/// Options of every command that works on the vault's data folder.
struct AppOptions: ParsableArguments {
    @Option(name: .long, help: "The data folder: settings, catalog, vault and local fabric (default $COFFRE_DATA or ./coffre-data).")
    var data: String?

    @Option(name: .long, help: ArgumentHelp(
        "The catalog: a SQLite file (default catalog.sqlite of the data folder) or postgres://USER@HOST:PORT/DB, shared by several nodes (default $COFFRE_CATALOG, then coffre.json's \"catalog\").",
        valueName: "path|url"))
    var catalog: String?

    var dataPath: String {
        let path = data ?? ProcessInfo.processInfo.environment["COFFRE_DATA"] ?? "coffre-data"
        return path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// Opens the installation, creating it on first use, and recovers what a killed process left.
    func makeEngine() async throws -> Engine {
        let root = dataPath
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let settings = try loadConfiguration(root)
        let backend = (settings.vault ?? .local(path: "vault")).resolved(against: root)
        let vault = try backend.openVault(encryptionKeyFile: ProcessInfo.processInfo.environment["COFFRE_ENCRYPTION_KEY_FILE"],
                                          creating: true)
        let catalog = try await catalogBackend(settings: settings).open()
        var fabrics: [any Fabric] = try settings.fabrics.map { entry in
            let path = entry.path.hasPrefix("/") ? entry.path : root + "/" + entry.path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            var configuration = LocalFabric.Configuration(root: path)
            configuration.name = entry.name
            configuration.region = entry.region ?? settings.region
            return LocalFabric(configuration: configuration)
        }
        fabrics += try settings.libvirtFabrics.map { try Self.libvirtFabric($0, settings: settings, root: root) }
        var configuration = Engine.Configuration(region: settings.region)
        configuration.maxDataDisks = settings.maxDataDisks
        configuration.minimumAgentVersion = settings.minimumAgentVersion
        configuration.softDeleteDays = settings.softDeleteDays
        configuration.onDemandRetentionDays = settings.onDemandRetentionDays
        configuration.installTimeout = .seconds(settings.installTimeoutSeconds)
        configuration.snapshotTimeout = .seconds(settings.snapshotTimeoutSeconds)
        configuration.copyTimeout = .seconds(settings.copyTimeoutSeconds)
        configuration.version = coffreVersion
        guard settings.heartbeatSeconds >= 1, settings.leaderLeaseSeconds >= 2 * settings.heartbeatSeconds else {
            throw CoffreError(.invalidConfiguration,
                              "coffre.json: leaderLeaseSeconds (\(settings.leaderLeaseSeconds)) must be at least twice heartbeatSeconds (\(settings.heartbeatSeconds)), which must be at least 1",
                              workaround: "Remove both to get the defaults (15 and 5)")
        }
        configuration.leaderLease = .seconds(settings.leaderLeaseSeconds)
        configuration.heartbeatInterval = .seconds(settings.heartbeatSeconds)
        let engine = Engine(configuration: configuration, catalog: catalog, store: VaultPointStore(vault), fabrics: fabrics,
                            clock: Self.clock(), owner: ProcessIdentity.current, isOwnerAlive: ProcessIdentity.isAlive,
                            fileBrowser: PointFileService(runDirectory: Self.runDirectory()),
                            coordinator: catalog as? any NodeCoordinator)
        try await engine.start()
        return engine
    }

    private static func libvirtFabric(
        _ entry: AppConfiguration.LibvirtFabricEntry, settings: AppConfiguration, root: String
    ) throws -> any Fabric {
        #if Libvirt
        func path(_ value: String?, _ fallback: String) -> String {
            let value = value ?? fallback
            return value.hasPrefix("/") ? value : root + "/" + value
        }
        var configuration = LibvirtFabric.Configuration(
            name: entry.name, uri: entry.uri, region: entry.region ?? settings.region,
            scratchDirectory: path(entry.scratchDirectory, "libvirt-scratch"),
            restoreDirectory: path(entry.restoreDirectory, "restored-vms"))
        configuration.cloudService = entry.cloudService
        configuration.agentBinary = entry.agentBinary.map { path($0, $0) }
        configuration.instantCopyBandwidth = entry.instantCopyMiBPerSecond.map { Int64($0) << 20 }
        return LibvirtFabric(configuration: configuration)
        #else
        throw CoffreError(.libvirtNotBuilt, "coffre.json names the libvirt fabric '\(entry.name)', but this coffre was built without libvirt",
                          workaround: "Build with `swift build -c release --traits Libvirt` (needs libvirt-dev), or remove libvirtFabrics from coffre.json")
        #endif
    }

    /// The catalog this installation uses: `--catalog`, else `$COFFRE_CATALOG`, else coffre.json's
    /// "catalog", else `catalog.sqlite` of the data folder.
    func catalogBackend(settings: AppConfiguration) -> CatalogBackend {
        let location = catalog ?? ProcessInfo.processInfo.environment["COFFRE_CATALOG"] ?? settings.catalog
        return CatalogBackend(location ?? CatalogBackend.defaultFile, root: dataPath)
    }

    /// coffre.json of the data folder, written with the defaults when missing.
    private func loadConfiguration(_ root: String) throws -> AppConfiguration {
        let path = root + "/" + AppConfiguration.fileName
        guard FileManager.default.fileExists(atPath: path) else {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(AppConfiguration()).write(to: URL(fileURLWithPath: path), options: .atomic)
            return AppConfiguration()
        }
        return try readConfiguration(root)
    }

    /// coffre.json of the data folder, or the defaults when there is none (nothing is written).
    func readConfiguration(_ root: String) throws -> AppConfiguration {
        let path = root + "/" + AppConfiguration.fileName
        guard let data = FileManager.default.contents(atPath: path) else { return AppConfiguration() }
        do {
            return try JSONDecoder().decode(AppConfiguration.self, from: data)
        } catch {
            throw CoffreError(.invalidConfiguration, "\(path) is not valid: \(error)",
                              workaround: "Fix the file or remove it to get the defaults back")
        }
    }

    /// Where mounts of points for file recovery go: `$COFFRE_RUN_DIR`, else /run/coffre.
    static func runDirectory() -> String {
        ProcessInfo.processInfo.environment["COFFRE_RUN_DIR"] ?? "/run/coffre"
    }

    /// The system clock, or a fixed instant from `COFFRE_NOW` (ISO 8601) — for tests and
    /// demonstrations of schedules and retention.
    static func clock() -> any TimeSource {
        guard let text = ProcessInfo.processInfo.environment["COFFRE_NOW"],
              let date = ISO8601DateFormatter().date(from: text)
        else { return SystemTimeSource() }
        return FixedTimeSource(date: date)
    }
}

struct FixedTimeSource: TimeSource {
    let date: Date
    func now() -> Date { date }
}
