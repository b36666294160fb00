import AsyncHTTPClient
import CoffreCore
import CoffreEngine
import CoffreServer
import Foundation
import Synchronization
import NIOCore
import NIOHTTP1

/// A `coffre serve` reached over its REST API (`--server URL`, `--token`).
///
/// Errors come back as the server's `{code, message, workaround}` and are thrown as the
/// same `CoffreError` the in-process engine would throw, so commands print them alike.
struct RemoteControlPlane: ControlPlane {
    /// The server's base URL without a trailing slash, e.g. `http://127.0.0.1:8080`.
    let server: String
    let token: String
    /// How often `wait` asks for a running job.
    var pollInterval: Duration = .milliseconds(300)

    /// How an https:// server's certificate is checked.
    let trust: ServerTrust

    init(server: String, token: String, trust: ServerTrust = .system) throws {
        var base = server.trimmingCharacters(in: .whitespaces)
        while base.hasSuffix("/") { base.removeLast() }
        guard let url = URL(string: base), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
            throw CoffreError(.invalidServer, "'\(server)' is not an http(s) URL",
                              workaround: "Give the address `coffre serve` prints, e.g. --server http://127.0.0.1:8080")
        }
        if url.scheme == "http", trust != .system {
            throw CoffreError(.invalidOption, "--fingerprint and --server-ca check an https:// server, and \(base) is http://",
                              workaround: "Give the https:// address `coffre serve` prints, or leave out --fingerprint and --server-ca")
        }
        self.server = base
        self.token = token.trimmingCharacters(in: .whitespacesAndNewlines)
        self.trust = trust
    }

    func discover() async throws -> Job { try await call(.POST, "/discovery") }
    func vms(unregistered: Bool) async throws -> [VMView] { try await call(.GET, "/vms" + (unregistered ? "?unregistered=true" : "")) }
    func register(_ vms: [String]) async throws -> BulkResponse { try await bulk("/registrations", RegistrationBody(vms: vms)) }
    func protect(_ vms: [String], policy: String, change: Bool) async throws -> BulkResponse {
        try await bulk("/protection", ProtectionBody(vms: vms, policy: policy, change: change))
    }
    func dashboard() async throws -> Dashboard { try await call(.GET, "/dashboard") }
    func nodes() async throws -> [NodeStatus] { try await call(.GET, "/nodes") }

    func createPolicy(_ policy: Policy) async throws { let _: Policy = try await call(.POST, "/policies", body: policy) }
    func updatePolicy(_ policy: Policy) async throws {
        let _: Policy = try await call(.PUT, "/policies/" + Self.segment(policy.name), body: policy)
    }
    func policies() async throws -> [Policy] { try await call(.GET, "/policies") }
    func policy(named name: String) async throws -> PolicyView { try await call(.GET, "/policies/" + Self.segment(name)) }

    func backupNow(_ vm: String, retainUntil: Date?) async throws -> Job {
        try await call(.POST, Self.vmPath(vm, "backup"), body: BackupBody(retainUntil: retainUntil))
    }
    func points(of vm: String) async throws -> PointsView { try await call(.GET, Self.vmPath(vm, "points")) }
    func restore(_ vm: String, point: String, to destination: RestoreDestination) async throws -> Job {
        var body = RestoreBody(point: point)
        switch destination {
        case .folder(let path, let format): (body.folder, body.format) = (path, format == .raw ? nil : format.rawValue)
        case .newVM(let name): body.newVmName = name
        case .instant(let name): (body.newVmName, body.instant) = (name, true)
        case .replaceDisks(let confirmed): (body.replaceDisks, body.confirm) = (true, confirmed)
        }
        return try await call(.POST, Self.vmPath(vm, "restore"), body: body)
    }
    func verify(_ vm: String, point: String?, _ request: Engine.VerificationRequest) async throws -> Job {
        try await call(.POST, Self.vmPath(vm, "verify"),
                       body: VerifyBody(point: point, checks: request.checks.map(\.rawValue), bootCommand: request.bootCommand,
                                        bootTimeoutSeconds: request.bootTimeoutSeconds))
    }
    func stopProtection(_ vm: String, deleteData: Bool) async throws -> Job {
        try await call(.POST, Self.vmPath(vm, "stop-protection"), body: StopProtectionBody(deleteData: deleteData))
    }
    func undelete(_ vm: String) async throws -> Job { try await call(.POST, Self.vmPath(vm, "undelete")) }
    func resume(_ vm: String) async throws -> Job { try await call(.POST, Self.vmPath(vm, "resume")) }

    func jobs(_ query: JobQuery) async throws -> [Job] {
        var items: [URLQueryItem] = []
        for (name, value) in [("type", query.type), ("status", query.status), ("vm", query.vm), ("since", query.since),
                              ("limit", query.limit.map(String.init))] {
            if let value { items.append(URLQueryItem(name: name, value: value)) }
        }
        var components = URLComponents()
        components.queryItems = items
        // `+` is a space in query strings: encode it too (`since=2027-01-31T10:00:00+01:00`).
        let query = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B") ?? ""
        return try await call(.GET, "/jobs" + (query.isEmpty ? "" : "?" + query))
    }
    func job(_ id: String) async throws -> Job { try await call(.GET, "/jobs/" + Self.segment(id)) }
    func cancel(jobID: String) async throws -> Job { try await call(.POST, "/jobs/" + Self.segment(jobID) + "/cancel") }

    func wait(for id: String, onUpdate: (@Sendable (Job) -> Void)?) async throws -> Job {
        while true {
            let job = try await job(id)
            onUpdate?(job)
            if job.status.isFinished { return job }
            try await Task.sleep(for: pollInterval)
        }
    }

    func createToken(name: String, role: Role) async throws -> TokenResponse {
        try await call(.POST, "/tokens", body: TokenBody(name: name, role: role))
    }
    func tokens() async throws -> [TokenView] { try await call(.GET, "/tokens") }

    // MARK: HTTP

    /// One client per server and trust for the process. A refused connection fails at once
    /// instead of being retried until the request's deadline (the shared client's default): a
    /// person is waiting.
    private static let clients = Mutex<[String: HTTPClient]>([:])

    private func client() async throws -> HTTPClient {
        let key = trust.description + " " + server
        if let client = Self.clients.withLock({ $0[key] }) { return client }
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(10)
        if let url = URL(string: server), url.scheme == "https", let host = url.host {
            configuration.tlsConfiguration = try await trust.configuration(host: host, port: url.port ?? 443)
        }
        let made = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let client = Self.clients.withLock { clients in
            if let existing = clients[key] { return existing }
            clients[key] = made
            return made
        }
        if client !== made { try? await made.shutdown() }
        return client
    }

    /// `/vms/prod%2Fweb01/backup`: a VM named `cloudService/name` is one path segment.
    static func vmPath(_ vm: String, _ action: String) -> String { "/vms/" + segment(vm) + "/" + action }

    static func segment(_ text: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#%")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    /// Registration and protection answer `{jobs, errors}` even when no job could start (4xx).
    private func bulk(_ path: String, _ body: some Encodable) async throws -> BulkResponse {
        let (status, data) = try await send(.POST, path, body: try APIJSON.encoder.encode(body))
        if let response = try? APIJSON.decoder.decode(BulkResponse.self, from: data) { return response }
        throw Self.error(status: status, data: data, path: path)
    }

    private func call<T: Decodable>(_ method: HTTPMethod, _ path: String, body: (any Encodable)? = nil) async throws -> T {
        let (status, data) = try await send(method, path, body: try body.map { try APIJSON.encoder.encode($0) })
        guard (200..<300).contains(status.code) else { throw Self.error(status: status, data: data, path: path) }
        do {
            return try APIJSON.decoder.decode(T.self, from: data)
        } catch {
            throw CoffreError(.unexpectedResponse, "The server's answer to \(method) \(path) is not what this coffre expects: \(error)",
                              workaround: "Use a coffre CLI of the same version as the server")
        }
    }

    private func send(_ method: HTTPMethod, _ path: String, body: Data?) async throws -> (HTTPResponseStatus, Data) {
        var request = HTTPClientRequest(url: server + "/api/v1" + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer " + token)
        request.headers.add(name: "Accept", value: "application/json")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        do {
            let response = try await client().execute(request, timeout: .seconds(60))
            let buffer = try await response.body.collect(upTo: 64 << 20)
            return (response.status, Data(buffer.readableBytesView))
        } catch let error as CoffreError {
            throw error
        } catch {
            let untrusted = "\(error)".contains("CERTIFICATE_VERIFY_FAILED")
            throw CoffreError(.serverUnreachable, "Cannot reach the Coffre server at \(server): \(error)",
                              workaround: untrusted
                                ? "Its certificate is not trusted: pin it with --fingerprint (or COFFRE_FINGERPRINT; `coffre serve` prints it), or give the authority that signed it with --server-ca"
                                : "Check --server (or COFFRE_SERVER) and that `coffre serve` runs there")
        }
    }

    /// The server's `{code, message, workaround}` as a `CoffreError`.
    private static func error(status: HTTPResponseStatus, data: Data, path: String) -> CoffreError {
        if let body = try? APIJSON.decoder.decode(APIError.Body.self, from: data) {
            return CoffreError(body.code, body.message, workaround: body.workaround)
        }
        return CoffreError(.unexpectedResponse, "HTTP \(status.code) from \(path): \(String(decoding: data.prefix(200), as: UTF8.self))")
    }
}
