import CoffreCore
@testable import CoffreServer
import CoffreSQLite
import CoffreSystem
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// Every route × every caller (no token, reader, operator, admin): 401 without a token,
/// 403 below the route's role, anything else at or above it.
@Suite struct AuthTests {
    /// A body each mutating route accepts (objects it names need not exist).
    static let bodies: [String: String] = [
        "POST /api/v1/registrations": #"{"vms": ["nothing"]}"#,
        "POST /api/v1/policies": #"{"name": "auth-new", "schedule": {"frequency": "daily", "weekdays": [], "time": "22:00", "timeZone": "UTC"}, "retention": {"days": 30}}"#,
        "PUT /api/v1/policies/{name}": #"{"name": "p1", "schedule": {"frequency": "daily", "weekdays": [], "time": "22:00", "timeZone": "UTC"}, "retention": {"days": 40, "weeks": 4}}"#,
        "POST /api/v1/protection": #"{"vms": ["nothing"], "policy": "p1"}"#,
        "POST /api/v1/vms/{vm}/backup": #"{}"#,
        "POST /api/v1/vms/{vm}/restore": #"{"point": "rp-none", "folder": "out"}"#,
        "POST /api/v1/vms/{vm}/stop-protection": #"{"deleteData": false}"#,
        "POST /api/v1/vms/{vm}/verify": #"{"point": "rp-none"}"#,
        "POST /api/v1/tokens": #"{"name": "ci", "role": "reader"}"#,
    ]

    /// The requests that need admin although their route needs less.
    static let destructive: [(route: String, body: String)] = [
        ("PUT /api/v1/policies/{name}", #"{"name": "p1", "schedule": {"frequency": "daily", "weekdays": [], "time": "22:00", "timeZone": "UTC"}, "retention": {"days": 10}}"#),
        ("PUT /api/v1/policies/{name}", #"{"name": "p1", "schedule": {"frequency": "daily", "weekdays": [], "time": "22:00", "timeZone": "UTC"}, "retention": {"days": 30, "weeks": 2}}"#),
        ("POST /api/v1/vms/{vm}/restore", #"{"point": "rp-none", "replaceDisks": true, "confirm": true}"#),
        ("POST /api/v1/vms/{vm}/restore", #"{"point": "rp-none", "folder": "/tmp/anywhere"}"#),
        ("POST /api/v1/vms/{vm}/stop-protection", #"{"deleteData": true}"#),
    ]

    static func uri(_ path: String) -> String {
        path.replacingOccurrences(of: "{vm}", with: "prod%2Fweb01")
            .replacingOccurrences(of: "{name}", with: "p1")
            .replacingOccurrences(of: "{id}", with: "job-none")
    }

    static func expected(_ caller: Role?, needs: Role?) -> (Int) -> Bool {
        guard let needs else { return { $0 != 401 && $0 != 403 } }
        guard let caller else { return { $0 == 401 } }
        return caller >= needs ? { $0 != 401 && $0 != 403 } : { $0 == 403 }
    }

    @Test(arguments: APIRoutes.all.map(\.key))
    func routeRule(_ key: String) async throws {
        let route = try #require(APIRoutes.all.first { $0.key == key })
        let harness = try await ServerHarness()
        try await harness.engine.createPolicy(Policy(name: "p1", schedule: .daily(at: TimeOfDay(hour: 22, minute: 0)), retention: Retention(days: 30, weeks: 4)))
        try await harness.app.test(.router) { client in
            let api = APIClient(client: client, harness: harness)
            for caller in [nil] + Role.allCases {
                let response = try await api.send(route.method, Self.uri(route.path), as: caller, json: Self.bodies[key])
                #expect(Self.expected(caller, needs: route.role)(response.status.code),
                        "\(key) as \(caller?.rawValue ?? "anonymous"): \(response.status.code) \(String(buffer: response.body))")
                if response.status.code == 401 || response.status.code == 403 {
                    let error = try api.decode(APIError.Body.self, response)
                    #expect(error.code == (response.status.code == 401 ? .unauthenticated : .forbidden))
                }
            }
        }
        await harness.engine.cancelAllAndWait()
    }

    @Test(arguments: Array(destructive.indices))
    func destructiveRequestsNeedAdmin(_ index: Int) async throws {
        let (key, body) = Self.destructive[index]
        let route = try #require(APIRoutes.all.first { $0.key == key })
        #expect(route.adminWhen != nil)
        let harness = try await ServerHarness()
        try await harness.engine.createPolicy(Policy(name: "p1", schedule: .daily(at: TimeOfDay(hour: 22, minute: 0)), retention: Retention(days: 30, weeks: 4)))
        try await harness.app.test(.router) { client in
            let api = APIClient(client: client, harness: harness)
            for caller in [nil] + Role.allCases {
                let response = try await api.send(route.method, Self.uri(route.path), as: caller, json: body)
                #expect(Self.expected(caller, needs: .admin)(response.status.code),
                        "\(key) \(body) as \(caller?.rawValue ?? "anonymous"): \(response.status.code) \(String(buffer: response.body))")
            }
        }
        await harness.engine.cancelAllAndWait()
    }

    @Test func cookieAndBadTokens() async throws {
        let harness = try await ServerHarness()
        try await harness.app.test(.router) { client in
            let reader = harness.tokenByRole[.reader]!
            var response = try await client.execute(uri: "/api/v1/dashboard", method: .get, headers: [.cookie: "coffre_token=\(reader)"])
            #expect(response.status == .ok)
            response = try await client.execute(uri: "/api/v1/dashboard", method: .get, headers: [.authorization: "Bearer nope"])
            #expect(response.status == .unauthorized)
            #expect(response.headers[.wwwAuthenticate] == "Bearer")
            response = try await client.execute(uri: "/api/v1/dashboard", method: .get, headers: [.authorization: "Basic \(reader)"])
            #expect(response.status == .unauthorized)
        }
    }

    static let writer: TokenStore.PrivateFileWriter = { path, bytes in
        try await runOnThread { _ in try FileIO.writeFileAtomically(path, bytes, mode: 0o600) }
    }

    static func withFolder(_ body: (String) async throws -> Void) async throws {
        let folder = NSTemporaryDirectory() + "coffre-tokens-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try await body(folder)
    }

    @Test func theAdminTokenFileIsPrivateAndTheCatalogKeepsOnlyHashes() async throws {
        try await Self.withFolder { folder in
            let catalog = try SQLiteCatalog(path: folder + "/catalog.sqlite")
            let (store, file) = try await TokenStore.openCreatingAdmin(catalog: catalog, dataFolder: folder, writer: Self.writer)
            let path = try #require(file)
            let token = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try await store.role(of: token) == .admin)
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let stored = try await catalog.tokens()
            #expect(stored.map(\.name) == ["admin"] && stored.allSatisfy { $0.hash != token && $0.hash.count == 64 })
            let bytes = try Data(contentsOf: URL(fileURLWithPath: folder + "/catalog.sqlite"))
            #expect(bytes.range(of: Data(token.utf8)) == nil, "the secret is nowhere in the catalog")
            // A second start keeps the tokens and writes no new admin token.
            let (again, none) = try await TokenStore.openCreatingAdmin(catalog: catalog, dataFolder: folder, writer: Self.writer)
            #expect(none == nil)
            #expect(try await again.role(of: token) == .admin)
            #expect(try await again.role(of: token + "x") == nil)
        }
    }

    @Test func nodesSharingACatalogAcceptEachOthersTokensAndCreateOneAdminToken() async throws {
        try await Self.withFolder { folder in
            // Five nodes, each with its own data folder, start at once on one catalog.
            let path = folder + "/catalog.sqlite"
            let stores = try await withThrowingTaskGroup(of: (TokenStore, String?).self) { group in
                for node in 0..<5 {
                    let data = folder + "/node\(node)"
                    try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
                    let catalog = try SQLiteCatalog(path: path)
                    group.addTask { try await TokenStore.openCreatingAdmin(catalog: catalog, dataFolder: data, writer: Self.writer) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(stores.compactMap(\.1).count == 1, "one admin token for the cluster")
            let reader = try await stores[0].0.create(name: "ci", role: .reader)
            for (store, _) in stores { #expect(try await store.role(of: reader) == .reader) }
            #expect(try await stores[4].0.all().map(\.name) == ["admin", "ci"])
        }
    }

    @Test func tokensOfAnEarlierTokensFileAreImportedOnce() async throws {
        try await Self.withFolder { folder in
            let legacy = "cof_legacy-secret"
            let entry = APIToken(name: "old-ci", role: .operator, hash: TokenStore.hash(legacy), createdAt: Date(timeIntervalSince1970: 1_700_000_000))
            try APIJSON.encoder.encode([entry]).write(to: URL(fileURLWithPath: folder + "/tokens.json"))
            let catalog = try SQLiteCatalog(path: folder + "/catalog.sqlite")
            let (store, file) = try await TokenStore.openCreatingAdmin(catalog: catalog, dataFolder: folder, writer: Self.writer)
            #expect(file == nil, "the imported tokens are the catalog's first: no new admin token")
            #expect(try await store.role(of: legacy) == .operator)
            #expect(try await catalog.tokens() == [entry])
            #expect(!FileManager.default.fileExists(atPath: folder + "/tokens.json"))
            #expect(FileManager.default.fileExists(atPath: folder + "/tokens.json.imported"))
            _ = try await TokenStore.openCreatingAdmin(catalog: catalog, dataFolder: folder, writer: Self.writer)
            #expect(try await catalog.tokens().count == 1)

            try Data("not json".utf8).write(to: URL(fileURLWithPath: folder + "/tokens.json"))
            await #expect(throws: CoffreError.self) {
                _ = try await TokenStore.openCreatingAdmin(catalog: catalog, dataFolder: folder, writer: Self.writer)
            }
        }
    }
}
