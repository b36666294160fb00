import CoffreCore
import CoffreSystem
@testable import CoffreServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
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

    @Test func tokenFilesArePrivateAndHashed() async throws {
        let folder = NSTemporaryDirectory() + "coffre-tokens-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let (store, file) = try await TokenStore.openCreatingAdmin(dataFolder: folder, writer: Self.writer)
        let path = try #require(file)
        let token = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(store.role(of: token) == .admin)
        for name in ["admin-token", "tokens.json"] {
            let mode = try FileManager.default.attributesOfItem(atPath: folder + "/" + name)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(name)")
        }
        let stored = try String(contentsOfFile: folder + "/tokens.json", encoding: .utf8)
        #expect(!stored.contains(token))
        // A second start keeps the tokens and writes no new admin token.
        let (again, none) = try await TokenStore.openCreatingAdmin(dataFolder: folder, writer: Self.writer)
        #expect(none == nil)
        #expect(again.role(of: token) == .admin)
    }

    @Test func aSlowEarlierSaveNeverLandsOverALaterOne() async throws {
        let folder = NSTemporaryDirectory() + "coffre-tokens-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // The second write of tokens.json (the first token after the admin's) takes 300 ms.
        let writes = Mutex(0)
        let slowSecond: TokenStore.PrivateFileWriter = { path, bytes in
            let number = path.hasSuffix("tokens.json") ? writes.withLock { $0 += 1; return $0 } : 0
            if number == 2 { try await Task.sleep(for: .milliseconds(300)) }
            try await Self.writer(path, bytes)
        }
        let (store, _) = try await TokenStore.openCreatingAdmin(dataFolder: folder, writer: slowSecond)
        let slow = Task { try await store.create(name: "slow", role: .reader) }
        while writes.withLock({ $0 }) < 2 { try await Task.sleep(for: .milliseconds(5)) }
        // Created while the slow save is under way: its own save must come after it.
        let fast = try await store.create(name: "fast", role: .operator)
        let first = try await slow.value
        let reopened = try TokenStore(path: folder + "/tokens.json", writer: Self.writer)
        #expect(reopened.role(of: first) == .reader)
        #expect(reopened.role(of: fast) == .operator, "the later token was lost under the earlier save")
        #expect(reopened.all.count == 3)
    }
}
