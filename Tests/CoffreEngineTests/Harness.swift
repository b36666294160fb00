import CoffreCore
import CoffreEngine
import CoffreLocalFabric
import CoffreSQLite
import CoffreStorage
import CoffreTesting
import Foundation
import Testing

/// An engine on the embedded defaults — SQLite catalog, folder vault, local fabric — in a
/// temporary folder, with a clock the test moves and a fake guest.
final class Harness: @unchecked Sendable {
    let folder: String
    let clock = ManualClock(iso: "2026-11-23T08:00:00Z")  // a Monday
    let catalog: SQLiteCatalog
    let vault: Vault
    let fabrics: [TestFabric]
    /// Replaced by `reconfigure`.
    private(set) var engine: Engine
    static let region = "eu-west"

    var fabric: TestFabric { fabrics[0] }

    init(fabricCount: Int = 1, configure: (inout Engine.Configuration) -> Void = { _ in }) async throws {
        folder = NSTemporaryDirectory() + "coffre-engine-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        catalog = try SQLiteCatalog(path: folder + "/catalog.sqlite")
        vault = try Vault.create(at: folder + "/vault", blockSize: 16 << 10)
        let base = folder
        fabrics = try (0..<fabricCount).map { index in
            let root = "\(base)/fabric\(index)"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            var configuration = LocalFabric.Configuration(root: root)
            configuration.name = "fabric\(index)"
            configuration.region = Harness.region
            return TestFabric(LocalFabric(configuration: configuration), root: root)
        }
        engine = Self.makeEngine(catalog: catalog, vault: vault, fabrics: fabrics, clock: clock, configure: configure)
        try await engine.start()
    }

    private static func makeEngine(
        catalog: SQLiteCatalog, vault: Vault, fabrics: [TestFabric], clock: ManualClock,
        configure: (inout Engine.Configuration) -> Void
    ) -> Engine {
        var configuration = Engine.Configuration(region: Harness.region)
        configuration.monitorInterval = .milliseconds(20)
        configure(&configuration)
        return Engine(configuration: configuration, catalog: catalog, store: VaultPointStore(vault), fabrics: fabrics,
                      clock: clock, owner: "test", isOwnerAlive: { $0 == "test" })
    }

    /// Goes on with an engine configured anew on the same catalog, vault and fabrics (as a
    /// restarted process would): a test's tight limits need not hold for what follows.
    func reconfigure(_ configure: (inout Engine.Configuration) -> Void = { _ in }) async throws {
        engine = Self.makeEngine(catalog: catalog, vault: vault, fabrics: fabrics, clock: clock, configure: configure)
        try await engine.start()
    }

    deinit { try? FileManager.default.removeItem(atPath: folder) }

    // MARK: VMs

    /// Writes a VM folder: `vm.json` and sparse disk images (the first is the OS disk).
    @discardableResult
    func addVM(
        _ name: String, cloudService: String = "prod", region: String = Harness.region, power: String = "running",
        agent: String? = "2.1", disks: [Int64] = [1 << 20], unsupported: [String] = [], fabric index: Int = 0
    ) throws -> VMKey {
        let folder = vmFolder(VMKey(cloudService: cloudService, name: name), fabric: index)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var names: [String] = []
        for (number, size) in disks.enumerated() {
            let disk = number == 0 ? "os.img" : "data\(number).img"
            names.append(disk)
            _ = FileManager.default.createFile(atPath: "\(folder)/\(disk)", contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(folder)/\(disk)"))
            try handle.truncate(atOffset: UInt64(size))
            try handle.close()
        }
        var json: [String: Any] = ["name": name, "cloudService": cloudService, "region": region,
                                   "osType": "linux", "powerState": power, "disks": names]
        if let agent { json["agentVersion"] = agent }
        if !unsupported.isEmpty { json["unsupportedFeatures"] = unsupported }
        try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
            .write(to: URL(fileURLWithPath: folder + "/vm.json"))
        return VMKey(cloudService: cloudService, name: name)
    }

    func vmFolder(_ key: VMKey, fabric index: Int = 0) -> String {
        "\(fabrics[index].root)/\(key.cloudService)/\(key.name)"
    }

    func diskPath(_ key: VMKey, _ disk: String = "os.img", fabric index: Int = 0) -> String {
        vmFolder(key, fabric: index) + "/" + disk
    }

    /// Overwrites bytes of a disk image in place.
    func write(_ key: VMKey, _ disk: String = "os.img", at offset: Int64, _ bytes: [UInt8], fabric index: Int = 0) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: diskPath(key, disk, fabric: index)))
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: Data(bytes))
        try handle.close()
    }

    func read(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Changes a field of a VM's vm.json.
    func edit(_ key: VMKey, fabric index: Int = 0, _ change: (inout [String: Any]) -> Void) throws {
        let path = vmFolder(key, fabric: index) + "/vm.json"
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        change(&json)
        try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]).write(to: URL(fileURLWithPath: path))
    }

    // MARK: Jobs

    func finish(_ job: Job) async throws -> Job {
        try await engine.wait(for: job.id)
    }

    @discardableResult
    func succeed(_ job: Job, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Job {
        let final = try await finish(job)
        #expect(final.status == .succeeded, "\(final.type.rawValue) failed: \(final.error.map(\.description) ?? "?")",
                sourceLocation: sourceLocation)
        return final
    }

    func discover() async throws {
        try await succeed(try await engine.discover())
    }

    /// Discovery, registration and protection with a daily 22:00 UTC policy keeping 7 days.
    func protect(_ names: [String], policy: Policy? = nil) async throws {
        try await discover()
        let registered = await engine.register(names)
        #expect(registered.errors.isEmpty, "\(registered.errors)")
        for job in registered.jobs { try await succeed(job) }
        let policy = policy ?? Harness.dailyPolicy
        if try await catalog.policy(named: policy.name) == nil { try await engine.createPolicy(policy) }
        let protected = await engine.protect(names, policy: policy.name)
        #expect(protected.errors.isEmpty, "\(protected.errors)")
        for job in protected.jobs { try await succeed(job) }
    }

    static let dailyPolicy = Policy(name: "daily", schedule: .daily(at: TimeOfDay(hour: 22, minute: 0)),
                                    retention: Retention(days: 7))

    /// A protected VM whose OS disk starts with `bytes` seeded bytes.
    @discardableResult
    func protectedVM(_ name: String, writing bytes: Int = 40_000, seed: UInt64 = 1) async throws -> VMKey {
        let key = try addVM(name)
        try write(key, at: 0, pattern(bytes, seed: seed))
        try await protect([name])
        return key
    }

    func backup(_ name: String, retainUntil: Date? = nil) async throws -> RecoveryPointRecord {
        let job = try await succeed(try await engine.backupNow(name, retainUntil: retainUntil))
        let id = try #require(job.details["point"])
        return try #require(try await catalog.point(id: id))
    }

    /// Restores a point into a fresh folder and returns each disk's bytes by name.
    func restore(_ vm: String, _ point: String) async throws -> [String: [UInt8]] {
        let target = folder + "/restore-\(UUID().uuidString)"
        try await succeed(try await engine.restore(vm, point: point, to: .folder(target)))
        var disks: [String: [UInt8]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: target) {
            disks[name] = try read(target + "/" + name)
        }
        try FileManager.default.removeItem(atPath: target)
        return disks
    }

    /// Every disk's current bytes by name.
    func disks(of key: VMKey, fabric index: Int = 0) throws -> [String: [UInt8]] {
        var disks: [String: [UInt8]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: vmFolder(key, fabric: index)) where name.hasSuffix(".img") {
            disks[name] = try read(diskPath(key, name, fabric: index))
        }
        return disks
    }

    /// Waits (real time) until `condition` holds, failing after 10 s.
    func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
        for _ in 0..<1000 {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("timed out waiting for \(what)")
        throw CancellationError()
    }
}

/// Seeded bytes for disk content.
func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}

/// Checks a recorded error against the catalogue's: same code, message and workaround.
func expectError(_ info: ErrorInfo?, _ expected: CoffreError, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(info == ErrorInfo(expected), sourceLocation: sourceLocation)
}

/// Runs `body`, expecting it to throw exactly `expected`.
func expectThrows(_ expected: CoffreError, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected \(expected.code), nothing thrown", sourceLocation: sourceLocation)
    } catch let error as CoffreError {
        #expect(error == expected, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(expected.code), got \(error)", sourceLocation: sourceLocation)
    }
}
