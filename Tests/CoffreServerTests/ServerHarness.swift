import CoffreCore
import CoffreEngine
import CoffreLocalFabric
@testable import CoffreServer
import CoffreSQLite
import CoffreStorage
import CoffreTesting
import Foundation
import Synchronization
import Hummingbird
import Logging
import HummingbirdTesting
import Testing

/// A server on a real engine (SQLite catalog, folder vault, local fabric) in a temp folder,
/// with one token per role.
final class ServerHarness: @unchecked Sendable {
    let folder: String
    let engine: Engine
    let tokens: TokenStore
    let tokenByRole: [Role: String]
    /// While held, snapshots wait: a backup stays in progress.
    let holdSnapshots = Gate()
    /// The vault's store: it can be made to stop answering (`StoreHold`).
    let store: HeldStore
    static let region = "local"

    init(fileBrowser: (@Sendable (_ folder: String) -> any PointFileBrowser)? = nil) async throws {
        folder = NSTemporaryDirectory() + "coffre-server-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder + "/fabric", withIntermediateDirectories: true)
        let catalog = try SQLiteCatalog(path: folder + "/catalog.sqlite")
        try LocalChunkStore.createLayout(at: folder + "/vault")
        store = HeldStore(LocalChunkStore(root: folder + "/vault"))
        let vault = try Vault.create(in: store, cacheDirectory: folder + "/vault/tmp", blockSize: 16 << 10)
        var fabricConfiguration = LocalFabric.Configuration(root: folder + "/fabric")
        fabricConfiguration.name = "local"
        fabricConfiguration.region = Self.region
        let fabric = FakeAgentFabric(inner: LocalFabric(configuration: fabricConfiguration), holdSnapshots: holdSnapshots)
        var configuration = Engine.Configuration(region: Self.region)
        configuration.monitorInterval = .milliseconds(20)
        engine = Engine(configuration: configuration, catalog: catalog, store: VaultPointStore(vault), fabrics: [fabric],
                        owner: "test", isOwnerAlive: { $0 == "test" }, fileBrowser: fileBrowser?(folder))
        try await engine.start()
        tokens = TokenStore(catalog: catalog)
        var tokenByRole: [Role: String] = [:]
        for role in Role.allCases { tokenByRole[role] = try await tokens.create(name: role.rawValue, role: role) }
        self.tokenByRole = tokenByRole
    }

    deinit { try? FileManager.default.removeItem(atPath: folder) }

    /// A self-signed certificate for 127.0.0.1 (made once with openssl, valid until 2126),
    /// written into the harness's folder.
    func testCertificate() throws -> ServerTLS {
        let certificate = folder + "/tls.crt", key = folder + "/tls.key"
        try Data(Self.certificatePEM.utf8).write(to: URL(fileURLWithPath: certificate))
        try Data(Self.keyPEM.utf8).write(to: URL(fileURLWithPath: key))
        return try ServerTLS.load(certificateFile: certificate, keyFile: key)
    }

    static let certificatePEM = """
        -----BEGIN CERTIFICATE-----
        MIIBkTCCATagAwIBAgIUemaeC7MdLjOo/CRFXZAYoL86YQ0wCgYIKoZIzj0EAwIw
        FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTIwNjA4MDI1NloYDzIxMjYxMTEy
        MDgwMjU2WjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO
        PQMBBwNCAASfSWs8rJbAS6nteajyn6xMkEn+k7Inx9LHaiEAdmL2ca0V69dY1AK4
        LWzWeyZiXHlgd74twuZ94co0YNq7qKtPo2QwYjAdBgNVHQ4EFgQU0bp7/YDQQXSI
        553NzTsc9yXp/VQwHwYDVR0jBBgwFoAU0bp7/YDQQXSI553NzTsc9yXp/VQwDwYD
        VR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwR/AAABMAoGCCqGSM49BAMCA0kAMEYC
        IQDyM41tqlrrN8pxUnTeAx5kCp4nAySbX6pF3mBjUTZkhgIhAMtL3BAiSY2X+aRG
        i0syKRd4gtwhVfQ4AcB/4b4O2Zli
        -----END CERTIFICATE-----
        """

    /// The test certificate's key: it protects nothing but this test.
    static let keyPEM = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXdETVWpBQfQj3fRV
        hoE0sOpNwtS8BTGyWmVtpmPSxaKhRANCAASfSWs8rJbAS6nteajyn6xMkEn+k7In
        x9LHaiEAdmL2ca0V69dY1AK4LWzWeyZiXHlgd74twuZ94co0YNq7qKtP
        -----END PRIVATE KEY-----
        """

    func configuration(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> ServerConfiguration {
        var logger = Logger(label: "coffre.server.test")
        logger.logLevel = .warning
        return ServerConfiguration(host: "127.0.0.1", port: 0, logger: logger, restoreRoot: folder + "/restores",
                            onServerRunning: onServerRunning)
    }

    var app: some ApplicationProtocol {
        get throws { try makeServerApplication(engine: engine, tokens: tokens, configuration: configuration()) }
    }

    /// Writes a VM folder: `vm.json` and sparse disks with a few bytes of content.
    func addVM(_ name: String, cloudService: String = "prod", power: String = "running", disks: Int = 1) throws {
        let vmFolder = "\(folder)/fabric/\(cloudService)/\(name)"
        try FileManager.default.createDirectory(atPath: vmFolder, withIntermediateDirectories: true)
        var names: [String] = []
        for number in 0..<disks {
            let disk = number == 0 ? "os.img" : "data\(number).img"
            names.append(disk)
            let path = vmFolder + "/" + disk
            _ = FileManager.default.createFile(atPath: path, contents: Data("disk \(name) \(number)".utf8))
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.truncate(atOffset: 1 << 20)
            try handle.close()
        }
        let json: [String: Any] = ["name": name, "cloudService": cloudService, "region": Self.region, "osType": "linux",
                                   "powerState": power, "disks": names, "agentVersion": "2.1"]
        try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
            .write(to: URL(fileURLWithPath: vmFolder + "/vm.json"))
    }

    /// Runs a job to its end through the engine (in-process tests).
    @discardableResult
    func finish(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Job {
        let job = try await engine.wait(for: id)
        #expect(job.status == .succeeded, "\(job.type.rawValue): \(job.error.map(\.description) ?? "")", sourceLocation: sourceLocation)
        return job
    }
}

/// The local fabric with the extension and the guest faked: no `coffre-agent` subprocess.
struct FakeAgentFabric: Fabric {
    let inner: LocalFabric
    let holdSnapshots: Gate
    var name: String { inner.name }
    var region: String { inner.region }
    func discover() async throws -> [DiscoveredVM] { try await inner.discover() }
    func vm(_ key: VMKey) async throws -> DiscoveredVM? { try await inner.vm(key) }
    func installExtension(on key: VMKey) async throws -> String { "1.0.0" }
    func guestChannel(for key: VMKey) async throws -> (any GuestChannel)? { FakeGuestChannel() }
    func makeSnapshot(of key: VMKey, id: String) async throws -> any FabricSnapshot {
        while holdSnapshots.isHeld { try await Task.sleep(for: .milliseconds(5)) }
        return try await inner.makeSnapshot(of: key, id: id)
    }
    func removeSnapshot(of key: VMKey, id: String) async throws { try await inner.removeSnapshot(of: key, id: id) }
    func makeRestoreTarget(_ request: RestoreRequest) async throws -> any RestoreTarget { try await inner.makeRestoreTarget(request) }
}

/// A switch tests flip to hold work in progress.
final class Gate: Sendable {
    private let held = Mutex(false)
    var isHeld: Bool { held.withLock { $0 } }
    func set(_ value: Bool) { held.withLock { $0 = value } }
}

/// Requests with JSON bodies and tokens, decoding JSON answers.
struct APIClient {
    let client: any TestClientProtocol
    let harness: ServerHarness

    @discardableResult
    func send(
        _ method: HTTPRequest.Method, _ uri: String, as role: Role? = .admin, json: String? = nil,
        headers extra: HTTPFields = [:]
    ) async throws -> TestResponse {
        var headers = extra
        if let role { headers[.authorization] = "Bearer \(harness.tokenByRole[role]!)" }
        if json != nil { headers[.contentType] = "application/json" }
        return try await client.execute(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
    }

    func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
        try APIJSON.decoder.decode(type, from: Data(buffer: response.body))
    }
}
