import AsyncHTTPClient
import CoffreCore
import CoffreEngine
@testable import CoffreServer
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import ServiceLifecycle
import Testing

/// The seed 000 flow against a real server on port 0 with a real HTTP client, over plain HTTP
/// and over HTTPS (a certificate made by openssl, the client trusting only it).
@Suite struct LiveServerTests {
    @Test(arguments: [false, true])
    func discoverRegisterProtectBackupOverHTTP(tls: Bool) async throws {
        let harness = try await ServerHarness()
        try harness.addVM("web01")
        try await harness.withLiveServer(as: .operator, tls: tls ? try harness.testCertificate() : nil) { http in
            #expect(http.base.hasPrefix(tls ? "https://" : "http://"))
            #expect(try await http.call(.GET, "/healthz", anonymous: true).status == .ok)
            #expect(try await http.call(.GET, "/api/v1/dashboard", anonymous: true).status == .unauthorized)

            try await http.waitSucceeded(try await http.job(.POST, "/api/v1/discovery"))
            let registration = try await http.call(.POST, "/api/v1/registrations", json: #"{"vms": ["web01"]}"#)
            for job in try registration.decode(BulkResponse.self).jobs { try await http.waitSucceeded(job) }
            _ = try await http.call(.POST, "/api/v1/policies", json: APIFlowTests.nightly)
            let protection = try await http.call(.POST, "/api/v1/protection", json: #"{"vms": ["web01"], "policy": "nightly"}"#)
            for job in try protection.decode(BulkResponse.self).jobs { try await http.waitSucceeded(job) }
            let backup = try await http.waitSucceeded(try await http.job(.POST, "/api/v1/vms/prod%2Fweb01/backup", json: "{}"))
            let points = try await http.call(.GET, "/api/v1/vms/web01/points").decode(PointsView.self)
            #expect(points.points.map(\.point.job) == [backup.id])
        }
        await harness.engine.cancelAllAndWait()
    }
}

extension ServerHarness {
    /// Runs the server on a free port for as long as `body` runs, `body` talking to it over
    /// real HTTP with the token of `role`.
    func withLiveServer(as role: Role, tls: ServerTLS? = nil, _ body: (Live) async throws -> Void) async throws {
        let port = AsyncStream<Int>.makeStream()
        var configuration = configuration { port.continuation.yield($0) }
        configuration.tls = tls
        let app = try makeServerApplication(engine: engine, tokens: tokens, configuration: configuration)
        let services = ServiceGroup(services: [app], gracefulShutdownSignals: [], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await services.run() }
            var ports = port.stream.makeAsyncIterator()
            let bound = try #require(await ports.next())
            #expect(bound > 0)
            let live = Live(base: "\(tls == nil ? "http" : "https")://127.0.0.1:\(bound)", token: tokenByRole[role]!,
                            trusting: tls?.chain)
            do {
                try await body(live)
            } catch {
                await services.triggerGracefulShutdown()
                try await live.shutdown()
                throw error
            }
            await services.triggerGracefulShutdown()
            try await live.shutdown()
        }
    }
}

/// A tiny AsyncHTTPClient wrapper speaking the API's JSON.
struct Live {
    let base: String
    let token: String
    /// A client of its own trusting only these certificates (HTTPS), else the shared one.
    private let client: HTTPClient
    private let ownsClient: Bool

    init(base: String, token: String, trusting certificates: [NIOSSLCertificate]? = nil) {
        self.base = base
        self.token = token
        if let certificates {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(certificates)
            client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
            ownsClient = true
        } else {
            client = HTTPClient.shared
            ownsClient = false
        }
    }

    func shutdown() async throws {
        if ownsClient { try await client.shutdown() }
    }

    struct Answer {
        var status: HTTPResponseStatus
        var body: Data
        func decode<T: Decodable>(_ type: T.Type) throws -> T { try APIJSON.decoder.decode(type, from: body) }
    }

    func call(_ method: HTTPMethod, _ path: String, json: String? = nil, anonymous: Bool = false) async throws -> Answer {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if !anonymous { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        return Answer(status: response.status, body: Data(buffer: body))
    }

    func job(_ method: HTTPMethod, _ path: String, json: String? = nil) async throws -> Job {
        let answer = try await call(method, path, json: json)
        #expect(answer.status == .accepted, "\(path): \(String(decoding: answer.body, as: UTF8.self))")
        return try answer.decode(Job.self)
    }

    /// Polls the job until it ends (bounded: about a minute), then expects success.
    @discardableResult
    func waitSucceeded(_ job: Job, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Job {
        for _ in 0..<600 {
            let current = try await call(.GET, "/api/v1/jobs/\(job.id)").decode(Job.self)
            if current.status.isFinished {
                #expect(current.status == .succeeded, "\(current.type.rawValue): \(current.error.map(\.description) ?? "")",
                        sourceLocation: sourceLocation)
                return current
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("job \(job.id) did not end", sourceLocation: sourceLocation)
        return job
    }
}

/// `coffre serve`'s service group: a graceful shutdown cancels running jobs and records them.
@Suite struct ShutdownTests {
    @Test func gracefulShutdownCancelsRunningJobs() async throws {
        let harness = try await ServerHarness()
        try harness.addVM("web01")
        try await harness.finish(try await harness.engine.discover().id)
        for job in await harness.engine.register(["web01"]).jobs { try await harness.finish(job.id) }
        try await harness.engine.createPolicy(Policy(name: "p", schedule: .daily(at: TimeOfDay(hour: 22, minute: 0)), retention: Retention(days: 7)))
        for job in await harness.engine.protect(["web01"], policy: "p").jobs { try await harness.finish(job.id) }

        let port = AsyncStream<Int>.makeStream()
        let group = try makeServiceGroup(engine: harness.engine, tokens: harness.tokens,
                                     configuration: harness.configuration { port.continuation.yield($0) },
                                     gracefulShutdownSignals: [])
        harness.holdSnapshots.set(true)
        let backup = try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var ports = port.stream.makeAsyncIterator()
            let bound = try #require(await ports.next())
            let http = Live(base: "http://127.0.0.1:\(bound)", token: harness.tokenByRole[.operator]!)
            let backup = try await http.job(.POST, "/api/v1/vms/web01/backup")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return backup
        }
        let final = try await harness.engine.job(backup.id)
        #expect(final.status == .cancelled)
        #expect(final.error?.code == .cancelled)
        #expect(try await harness.engine.points(of: "web01").points.isEmpty)
    }
}
