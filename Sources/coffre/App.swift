import ArgumentParser
import CoffreCore
import CoffreEngine
import CoffreLocalFabric
import CoffreSQLite
import CoffreStorage
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
    /// Local fabrics: name and folder (relative to the data folder or absolute).
    var fabrics: [LocalFabricEntry] = [LocalFabricEntry(name: "local", path: "fabric")]

    struct LocalFabricEntry: Codable, Sendable {
        var name: String
        var path: String
        var region: String?
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
        fabrics = try c.decodeIfPresent([LocalFabricEntry].self, forKey: .fabrics) ?? d.fabrics
    }

    static let fileName = "coffre.json"
}

/// Options of every command that works on the vault's data folder.
struct AppOptions: ParsableArguments {
    @Option(name: .long, help: "The data folder: settings, catalog, vault and local fabric (default $COFFRE_DATA or ./coffre-data).")
    var data: String?

    var dataPath: String {
        let path = data ?? ProcessInfo.processInfo.environment["COFFRE_DATA"] ?? "coffre-data"
        return path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// Opens the installation, creating it on first use, and recovers what a killed process left.
    func makeEngine() async throws -> Engine {
        let root = dataPath
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let settings = try loadConfiguration(root)
        let vaultPath = root + "/vault"
        let vault: Vault
        if FileManager.default.fileExists(atPath: vaultPath + "/" + VaultConfiguration.fileName) {
            vault = try Vault.open(at: vaultPath, encryptionKeyFile: ProcessInfo.processInfo.environment["COFFRE_ENCRYPTION_KEY_FILE"])
        } else {
            vault = try Vault.create(at: vaultPath)
        }
        let catalog = try SQLiteCatalog(path: root + "/catalog.sqlite")
        let fabrics: [any Fabric] = try settings.fabrics.map { entry in
            let path = entry.path.hasPrefix("/") ? entry.path : root + "/" + entry.path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            var configuration = LocalFabric.Configuration(root: path)
            configuration.name = entry.name
            configuration.region = entry.region ?? settings.region
            return LocalFabric(configuration: configuration)
        }
        var configuration = Engine.Configuration(region: settings.region)
        configuration.maxDataDisks = settings.maxDataDisks
        configuration.minimumAgentVersion = settings.minimumAgentVersion
        configuration.softDeleteDays = settings.softDeleteDays
        configuration.onDemandRetentionDays = settings.onDemandRetentionDays
        configuration.installTimeout = .seconds(settings.installTimeoutSeconds)
        configuration.snapshotTimeout = .seconds(settings.snapshotTimeoutSeconds)
        configuration.copyTimeout = .seconds(settings.copyTimeoutSeconds)
        let engine = Engine(configuration: configuration, catalog: catalog, store: vault, fabrics: fabrics,
                            clock: Self.clock())
        try await engine.start()
        return engine
    }

    private func loadConfiguration(_ root: String) throws -> AppConfiguration {
        let path = root + "/" + AppConfiguration.fileName
        guard let data = FileManager.default.contents(atPath: path) else {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(AppConfiguration()).write(to: URL(fileURLWithPath: path), options: .atomic)
            return AppConfiguration()
        }
        do {
            return try JSONDecoder().decode(AppConfiguration.self, from: data)
        } catch {
            throw CoffreError("InvalidConfiguration", "\(path) is not valid: \(error)",
                              workaround: "Fix the file or remove it to get the defaults back")
        }
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
