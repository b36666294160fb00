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
    /// Backups this node runs at once; the rest wait queued for a free place on any node.
    var maxConcurrentBackups = 4
    /// Verifications this node runs at once; the rest wait queued.
    var maxConcurrentVerifications = 2
    /// How often the leader looks for due backups and expired points.
    var tickSeconds = 30
    /// Local fabrics: name and folder (relative to the data folder or absolute).
    var fabrics: [LocalFabricEntry] = [LocalFabricEntry(name: "local", path: "fabric")]
    /// Where the vault keeps its bytes; nil: the folder `vault` of the data folder.
    var vault: VaultBackend?
    /// The catalog: a SQLite file (relative to the data folder) or a postgres:// URL; nil:
    /// `catalog.sqlite` of the data folder.
    var catalog: String?
    /// libvirt hosts (a coffre built with `--traits Libvirt`), see docs/libvirt.md.
    var libvirtFabrics: [LibvirtFabricEntry] = []
    /// Where `coffre serve` listens when the command line does not say (default 127.0.0.1:8080).
    var host: String?
    var port: Int?
    /// HTTPS: a PEM certificate chain and its key (relative to the data folder or absolute), or
    /// a self-signed certificate made in `<data>/tls` on the first start.
    var tlsCertificate: String?
    var tlsKey: String?
    var tlsSelfSigned: Bool?
    /// Plain HTTP on an address other than loopback (refused unless this is true).
    var allowPlainHTTP: Bool?

    struct LocalFabricEntry: Codable, Sendable {
        var name: String
        var path: String
        var region: String?
        /// Backups of this fabric at once, on every node together (none: no limit but the nodes').
        var maxConcurrentBackups: Int?
    }

    struct LibvirtFabricEntry: Codable, Sendable {
        var name: String
        /// `qemu:///system`, `qemu+ssh://root@host/system`.
        var uri: String
        var region: String?
        /// Backups of this fabric at once, on every node together (none: no limit but the nodes').
        var maxConcurrentBackups: Int?
        /// Default: the host's name.
        var cloudService: String?
        /// Fleecing scratch files and NBD sockets (default `<data>/libvirt-scratch`).
        var scratchDirectory: String?
        /// Disks of VMs restored as new domains (default `<data>/restored-vms`).
        var restoreDirectory: String?
        /// A statically linked coffre-agent to install in guests (default: the Debian package's
        /// /usr/lib/coffre/coffre-agent); without one, guests are frozen through
        /// qemu-guest-agent only (no pre/post scripts).
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
        maxConcurrentBackups = try c.decodeIfPresent(Int.self, forKey: .maxConcurrentBackups) ?? d.maxConcurrentBackups
        maxConcurrentVerifications = try c.decodeIfPresent(Int.self, forKey: .maxConcurrentVerifications)
            ?? d.maxConcurrentVerifications
        tickSeconds = try c.decodeIfPresent(Int.self, forKey: .tickSeconds) ?? d.tickSeconds
        fabrics = try c.decodeIfPresent([LocalFabricEntry].self, forKey: .fabrics) ?? d.fabrics
        libvirtFabrics = try c.decodeIfPresent([LibvirtFabricEntry].self, forKey: .libvirtFabrics) ?? d.libvirtFabrics
        vault = try c.decodeIfPresent(VaultBackend.self, forKey: .vault)
        catalog = try c.decodeIfPresent(String.self, forKey: .catalog)
        host = try c.decodeIfPresent(String.self, forKey: .host)
        port = try c.decodeIfPresent(Int.self, forKey: .port)
        tlsCertificate = try c.decodeIfPresent(String.self, forKey: .tlsCertificate)
        tlsKey = try c.decodeIfPresent(String.self, forKey: .tlsKey)
        tlsSelfSigned = try c.decodeIfPresent(Bool.self, forKey: .tlsSelfSigned)
        allowPlainHTTP = try c.decodeIfPresent(Bool.self, forKey: .allowPlainHTTP)
    }

    static let fileName = "coffre.json"
}

/// Options of every command that works on the vault's data folder.
///
/// An installation from the Debian package keeps its settings in /etc/coffre/coffre.json and its
/// data in /var/lib/coffre: while that settings file exists, those are the defaults of every
/// command that names no data folder, so that `sudo coffre jobs` on the host sees the service's
/// installation. Elsewhere the defaults are ./coffre-data and its coffre.json.
struct AppOptions: ParsableArguments {
    @Option(name: .long, help: "The data folder: catalog, vault and local fabric (default $COFFRE_DATA, then /var/lib/coffre when /etc/coffre/coffre.json exists, then ./coffre-data).")
    var data: String?

    @Option(name: .long, help: ArgumentHelp(
        "The settings file (default $COFFRE_CONFIG, then /etc/coffre/coffre.json when it exists and no data folder is named, then coffre.json of the data folder).",
        valueName: "path"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp(
        "The catalog: a SQLite file (default catalog.sqlite of the data folder) or postgres://USER@HOST:PORT/DB, shared by several nodes (default $COFFRE_CATALOG, then coffre.json's \"catalog\").",
        valueName: "path|url"))
    var catalog: String?

    /// Where the Debian package puts the settings and the data (docs/install.md).
    static let packagedConfig = "/etc/coffre/coffre.json"
    static let packagedData = "/var/lib/coffre"

    private var environment: [String: String] { ProcessInfo.processInfo.environment }
    private var namedData: String? { data ?? environment["COFFRE_DATA"] }
    private var namedConfig: String? { config ?? environment["COFFRE_CONFIG"] }
    private var packaged: Bool { FileManager.default.fileExists(atPath: Self.packagedConfig) }

    var dataPath: String {
        Self.absolute(namedData ?? (packaged ? Self.packagedData : "coffre-data"))
    }

    /// The settings file; relative paths inside it are relative to the data folder.
    var configPath: String {
        if let namedConfig { return Self.absolute(namedConfig) }
        if namedData == nil, packaged { return Self.packagedConfig }
        return dataPath + "/" + AppConfiguration.fileName
    }

    private static func absolute(_ path: String) -> String {
        resolve(path, against: FileManager.default.currentDirectoryPath)
    }

    /// `path` when absolute, else taken from `root` (the data folder for coffre.json's paths).
    static func resolve(_ path: String, against root: String) -> String {
        path.hasPrefix("/") ? path : root + "/" + path
    }

    /// Opens the installation, creating it on first use, and recovers what a killed process left.
    /// - Parameters:
    ///   - vault: the vault named on the command line (`serve --vault`), before coffre.json's.
    ///   - serving: for `coffre serve`, whose engine heartbeats as a node once it runs; any other
    ///     command heartbeats as a client on a shared catalog, so that the leader sees it die.
    ///   - settings: the settings already read (`serve`); nil: read them here.
    func makeEngine(vault named: VaultBackend? = nil, serving: Bool = false,
                    settings read: AppConfiguration? = nil) async throws -> Engine {
        let root = dataPath
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let settings = try read ?? loadConfiguration()
        let backend = (named ?? settings.vault ?? .local(path: "vault")).resolved(against: root)
        let vault = try backend.openVault(encryptionKeyFile: ProcessInfo.processInfo.environment["COFFRE_ENCRYPTION_KEY_FILE"],
                                          creating: true)
        let catalog = try await catalogBackend(settings: settings).open()
        let fabrics = try Self.fabrics(settings, root: root)
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
        let fabricLimits = settings.fabrics.map { ($0.name, $0.maxConcurrentBackups) }
            + settings.libvirtFabrics.map { ($0.name, $0.maxConcurrentBackups) }
        for (name, limit) in [("", settings.maxConcurrentBackups as Int?)] + fabricLimits {
            if let limit, limit < 1 {
                throw CoffreError(.invalidConfiguration,
                                  "coffre.json: maxConcurrentBackups\(name.isEmpty ? "" : " of fabric \(name)") is \(limit); it must be at least 1",
                                  workaround: "Remove it to get the default (4 per node, no limit per fabric)")
            }
        }
        configuration.maxConcurrentBackups = settings.maxConcurrentBackups
        guard settings.maxConcurrentVerifications >= 1 else {
            throw CoffreError(.invalidConfiguration,
                              "coffre.json: maxConcurrentVerifications is \(settings.maxConcurrentVerifications); it must be at least 1",
                              workaround: "Remove it to get the default (2 per node)")
        }
        configuration.maxConcurrentVerifications = settings.maxConcurrentVerifications
        guard settings.tickSeconds >= 1 else {
            throw CoffreError(.invalidConfiguration, "coffre.json: tickSeconds is \(settings.tickSeconds); it must be at least 1",
                              workaround: "Remove it to get the default (30)")
        }
        configuration.tickInterval = .seconds(settings.tickSeconds)
        configuration.fabricBackupLimits = Dictionary(fabricLimits.compactMap { name, limit in limit.map { (name, $0) } },
                                                      uniquingKeysWith: min)
        configuration.leaderLease = .seconds(settings.leaderLeaseSeconds)
        configuration.heartbeatInterval = .seconds(settings.heartbeatSeconds)
        let engine = Engine(configuration: configuration, catalog: catalog, store: VaultPointStore(vault), fabrics: fabrics,
                            clock: Self.clock(), owner: ProcessIdentity.current, isOwnerAlive: ProcessIdentity.isAlive,
                            fileBrowser: PointFileService(runDirectory: Self.runDirectory()),
                            coordinator: catalog as? any NodeCoordinator)
        if !serving { engine.heartbeatAsClient() }
        try await engine.start()
        return engine
    }

    /// The fabrics coffre.json names: local folders (made when missing) and libvirt hosts.
    static func fabrics(_ settings: AppConfiguration, root: String, creatingFolders: Bool = true) throws -> [any Fabric] {
        let local: [any Fabric] = try settings.fabrics.map { entry in
            let path = resolve(entry.path, against: root)
            if creatingFolders { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
            var configuration = LocalFabric.Configuration(root: path)
            configuration.name = entry.name
            configuration.region = entry.region ?? settings.region
            return LocalFabric(configuration: configuration)
        }
        return try local + settings.libvirtFabrics.map { try libvirtFabric($0, settings: settings, root: root) }
    }

    private static func libvirtFabric(
        _ entry: AppConfiguration.LibvirtFabricEntry, settings: AppConfiguration, root: String
    ) throws -> any Fabric {
        #if Libvirt
        func path(_ value: String?, _ fallback: String) -> String { resolve(value ?? fallback, against: root) }
        var configuration = LibvirtFabric.Configuration(
            name: entry.name, uri: entry.uri, region: entry.region ?? settings.region,
            scratchDirectory: path(entry.scratchDirectory, "libvirt-scratch"),
            restoreDirectory: path(entry.restoreDirectory, "restored-vms"))
        configuration.cloudService = entry.cloudService
        // Default: the package's static agent; a build folder's coffre-agent is not static.
        configuration.agentBinary = entry.agentBinary.map { path($0, $0) } ?? LocalFabric.Configuration.packagedAgentPath()
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

    /// The settings file; coffre.json of the data folder is written with the defaults when
    /// missing, a settings file named by --config, $COFFRE_CONFIG or the package must exist.
    func loadConfiguration() throws -> AppConfiguration {
        let path = configPath
        guard FileManager.default.fileExists(atPath: path) else {
            guard namedConfig == nil else { throw missingConfiguration(path) }
            try FileManager.default.createDirectory(atPath: dataPath, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(AppConfiguration()).write(to: URL(fileURLWithPath: path), options: .atomic)
            return AppConfiguration()
        }
        return try readConfiguration()
    }

    /// The settings file, or the defaults when the data folder has none (nothing is written).
    func readConfiguration() throws -> AppConfiguration {
        let path = configPath
        guard let data = FileManager.default.contents(atPath: path) else {
            guard namedConfig == nil else { throw missingConfiguration(path) }
            return AppConfiguration()
        }
        do {
            return try JSONDecoder().decode(AppConfiguration.self, from: data)
        } catch {
            throw CoffreError(.invalidConfiguration, "\(path) is not valid: \(error)",
                              workaround: "Fix the file or remove it to get the defaults back")
        }
    }

    private func missingConfiguration(_ path: String) -> CoffreError {
        CoffreError(.invalidConfiguration, "The settings file \(path) does not exist",
                    workaround: "Name an existing file with --config or $COFFRE_CONFIG, or leave both out for coffre.json of the data folder")
    }

    /// Where mounts of points for file recovery go: `$COFFRE_RUN_DIR`, else /run/coffre.
    static func runDirectory() -> String {
        ProcessInfo.processInfo.environment["COFFRE_RUN_DIR"] ?? "/run/coffre"
    }

    /// The system clock, or a fixed instant from `COFFRE_NOW` (ISO 8601) — for tests and
    /// demonstrations of schedules and retention. With `COFFRE_CLOCK_SPEED` too, the clock
    /// runs from `COFFRE_NOW` that many times faster than real time, counted from the real
    /// instant `COFFRE_CLOCK_FROM` (default: now): nodes given the same three agree.
    static func clock() -> any TimeSource {
        let environment = ProcessInfo.processInfo.environment
        guard let text = environment["COFFRE_NOW"], let date = ISO8601DateFormatter().date(from: text)
        else { return SystemTimeSource() }
        guard let speed = environment["COFFRE_CLOCK_SPEED"].flatMap(Double.init), speed > 0 else {
            return FixedTimeSource(date: date)
        }
        let from = environment["COFFRE_CLOCK_FROM"].flatMap { ISO8601DateFormatter().date(from: $0) } ?? Date()
        return ScaledTimeSource(start: date, realStart: from, speed: speed)
    }
}

struct FixedTimeSource: TimeSource {
    let date: Date
    func now() -> Date { date }
}

/// A clock `speed` times faster than real time, at `start` when real time was `realStart`.
struct ScaledTimeSource: TimeSource {
    let start: Date
    let realStart: Date
    let speed: Double
    func now() -> Date { start.addingTimeInterval(Date().timeIntervalSince(realStart) * speed) }
}
