import AsyncHTTPClient
import CoffreCore
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// How failed requests are tried again: exponential backoff with full jitter, bounded in count
/// and in time.
public struct S3RetryPolicy: Sendable {
    /// Tries per request, the first included.
    public var maxAttempts: Int
    /// The first wait's upper bound; each retry doubles it, up to `maxDelay`.
    public var baseDelay: Double
    public var maxDelay: Double
    /// No retry starts later than this after the first try.
    public var maxTotal: Double

    public init(maxAttempts: Int = 8, baseDelay: Double = 0.1, maxDelay: Double = 5, maxTotal: Double = 60) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxTotal = maxTotal
    }

    /// The wait before retry `attempt` (1 for the first retry): uniform in 0…min(max, base·2^(attempt-1)).
    func delay(beforeRetry attempt: Int) -> Double {
        let cap = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
        return Double.random(in: 0...cap)
    }
}

/// One request to the bucket. `key` is the object's full key (prefix included), nil for the
/// bucket itself.
struct S3Request: Sendable {
    var method: HTTPMethod
    var key: String?
    var query: [(String, String)] = []
    var headers: [String: String] = [:]
    var body: [UInt8]?
    /// What the request is, for error messages (`PUT packs/ab/…`).
    var label: String { "\(method.rawValue) \(key ?? "bucket")" }
}

struct S3Response: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]

    /// The S3 error code and message of an error answer's XML body.
    var error: (code: String, message: String) {
        guard let xml = S3XML.parse(body), xml.name == "Error" else { return ("", "") }
        return (xml.text("Code") ?? "", xml.text("Message") ?? "")
    }
}

/// Signs and sends requests to one bucket, blocking the calling thread: at most
/// `maxRequestsInFlight` at once, each tried again as `S3RetryPolicy` says on 5xx, `SlowDown`,
/// throttling, timeouts, dropped connections and truncated answers.
final class S3Client: Sendable {
    let location: S3Location
    private let credentials: S3Credentials
    private let signer: SignatureV4
    private let http: HTTPClient
    private let slots: DispatchSemaphore
    let retry: S3RetryPolicy
    private let counts = Mutex(StoreRequests())
    /// Scheme, host and port of requests, and the path that comes before keys.
    let base: String
    let host: String
    let pathPrefix: String
    /// The longest one try may take: `requestTimeout` plus a second per MiB of body.
    let requestTimeout: Double
    /// Added to this machine's clock when signing (tests of clock skew).
    let clockOffset: Double

    init(location: S3Location, credentials: S3Credentials, retry: S3RetryPolicy = S3RetryPolicy(),
         requestTimeout: Double = 60, clockOffset: Double = 0) throws {
        self.location = location
        self.credentials = credentials
        self.signer = SignatureV4(region: location.region)
        self.retry = retry
        self.requestTimeout = requestTimeout
        self.clockOffset = clockOffset
        self.slots = DispatchSemaphore(value: location.maxRequestsInFlight ?? S3Location.defaultMaxRequestsInFlight)
        guard let url = URLComponents(string: location.endpoint), let scheme = url.scheme, let hostName = url.host else {
            throw CoffreError.invalidS3Location(location.url, detail: "the endpoint '\(location.endpoint)' is not a URL")
        }
        let defaultPort = scheme == "https" ? 443 : 80
        let port = url.port.flatMap { $0 == defaultPort ? nil : $0 }
        let authority = (location.virtualHosted ? "\(location.bucket).\(hostName)" : hostName) + (port.map { ":\($0)" } ?? "")
        host = authority
        base = "\(scheme)://\(authority)"
        pathPrefix = location.virtualHosted ? "" : "/\(location.bucket)"

        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(Int64(requestTimeout)))
        configuration.decompression = .disabled
        configuration.redirectConfiguration = .disallow
        configuration.connectionPool = .init(
            idleTimeout: .seconds(30),
            concurrentHTTP1ConnectionsPerHostSoftLimit: location.maxRequestsInFlight ?? S3Location.defaultMaxRequestsInFlight)
        if scheme == "https" {
            var tls = TLSConfiguration.makeClientConfiguration()
            if let caFile = location.caFile {
                guard FileManager.default.isReadableFile(atPath: caFile) else {
                    throw CoffreError.invalidS3Location(location.url, detail: "the CA file \(caFile) cannot be read")
                }
                tls.trustRoots = .file(caFile)
            }
            configuration.tlsConfiguration = tls
        }
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    deinit {
        // The client keeps itself alive until its shutdown is done.
        http.shutdown { _ in }
    }

    var requestCounts: StoreRequests { counts.withLock { $0 } }

    /// The URL path of a key (each segment percent-encoded) and the unencoded path to sign.
    func paths(_ key: String?) -> (url: String, signed: String) {
        guard let key else { return (pathPrefix.isEmpty ? "/" : pathPrefix, pathPrefix.isEmpty ? "/" : pathPrefix) }
        let encoded = key.split(separator: "/", omittingEmptySubsequences: false)
            .map { SignatureV4.encode(String($0)) }.joined(separator: "/")
        return ("\(pathPrefix)/\(encoded)", "\(pathPrefix)/\(key)")
    }

    /// Sends a request, trying again while it fails in a way that may pass. Returns the
    /// server's answer, whatever its status, once it is final.
    /// - Parameter ambiguous: told, before a retry, that an earlier try may have been carried
    ///   out by the server although its answer was lost (a PUT that timed out, a 500).
    func send(_ request: S3Request, ambiguous: (() -> Void)? = nil) throws -> S3Response {
        let started = ContinuousClock.now
        var attempt = 1
        while true {
            let outcome: Result<S3Response, any Error>
            do { outcome = .success(try sendOnce(request)) } catch { outcome = .failure(error) }
            guard isWorthRetrying(outcome) else {
                if case .failure(let error) = outcome, !(error is CoffreError) {
                    throw finalError(request, outcome: outcome, attempts: attempt)
                }
                return try outcome.get()
            }
            let elapsed = Double((ContinuousClock.now - started).components.seconds)
            let wait = retry.delay(beforeRetry: attempt)
            guard attempt < retry.maxAttempts, elapsed + wait <= retry.maxTotal else {
                throw finalError(request, outcome: outcome, attempts: attempt)
            }
            if request.method != .GET && request.method != .HEAD { ambiguous?() }
            counts.withLock { $0.retries += 1 }
            Thread.sleep(forTimeInterval: wait)
            attempt += 1
        }
    }

    /// Whether the outcome may pass on another try.
    private func isWorthRetrying(_ outcome: Result<S3Response, any Error>) -> Bool {
        switch outcome {
        case .success(let response):
            switch response.status {
            case 500, 502, 503, 504, 429: return true
            case 400, 403, 409:
                // 409 OperationAborted / ConditionalRequestConflict: a concurrent conditional write
                // is in progress; the next try sees its outcome.
                let passing = ["RequestTimeout", "SlowDown", "Throttling", "ThrottlingException", "OperationAborted",
                               "ConditionalRequestConflict"]
                return passing.contains(response.error.code)
            default: return false
            }
        case .failure(let error):
            return !(error is CoffreError || Self.isPermanentTLSFailure(error))
        }
    }

    /// A handshake or certificate failure: a certificate that is not trusted stays so, no point
    /// trying again. (A TLS connection cut short is tried again, as any other.)
    static func isPermanentTLSFailure(_ error: any Error) -> Bool {
        guard let error = error as? NIOSSLError else { return false }
        switch error {
        case .handshakeFailed, .failedToLoadCertificate, .noSuchFilesystemObject, .unableToValidateCertificate,
             .cannotMatchULabel, .noCertificateToValidate:
            return true
        default:
            return false
        }
    }

    /// The error of a request that failed for good.
    private func finalError(_ request: S3Request, outcome: Result<S3Response, any Error>, attempts: Int) -> CoffreError {
        let tries = attempts == 1 ? "1 try" : "\(attempts) tries"
        switch outcome {
        case .success(let response):
            let error = response.error
            return .s3RequestFailed(request.label, status: response.status, code: error.code,
                                    detail: "\(error.message.isEmpty ? "" : error.message + "; ")gave up after \(tries)")
        case .failure(let error) where Self.isPermanentTLSFailure(error):
            let hint = location.caFile == nil
                ? "if the server's certificate comes from a CA of your own, give it with --ca-file (caFile)"
                : "check that \(location.caFile!) holds the CA that signed the server's certificate"
            let what = "\(error)".contains("CERTIFICATE_VERIFY_FAILED")
                ? "the server's certificate is not trusted (CERTIFICATE_VERIFY_FAILED)" : "\(error)"
            return .s3Unreachable(location.endpoint, detail: "\(request.label): TLS failed: \(what); \(hint)")
        case .failure(let error):
            return .s3Unreachable(location.endpoint, detail: "\(request.label): \(Self.describe(error)) (gave up after \(tries))")
        }
    }

    /// A transport error in words.
    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: return "the connection timed out"
            case .readTimeout: return "no answer in time"
            case .deadlineExceeded: return "the request took too long"
            case .remoteConnectionClosed: return "the server closed the connection"
            default: return "\(error)"
            }
        }
        return "\(error)"
    }

    /// One try: signs, sends and waits for the whole answer.
    private func sendOnce(_ request: S3Request) throws -> S3Response {
        slots.wait()
        defer { slots.signal() }
        let (urlPath, signedPath) = paths(request.key)
        let query = SignatureV4.canonicalQuery(request.query)
        let url = base + urlPath + (query.isEmpty ? "" : "?" + query)
        let body = request.body
        let payloadHash = body.map { SignatureV4.hex(Array(SHA256.hash(data: $0))) } ?? SignatureV4.emptyPayloadHash
        var toSign = request.headers
        toSign["host"] = host
        toSign["x-amz-content-sha256"] = payloadHash
        let signed = signer.sign(method: request.method.rawValue, path: signedPath, query: request.query, headers: toSign,
                                 payloadHash: payloadHash, date: Date().addingTimeInterval(clockOffset),
                                 credentials: credentials)
        var headers = HTTPHeaders()
        for (name, value) in signed { headers.add(name: name, value: value) }
        let httpRequest = try HTTPClient.Request(url: url, method: request.method, headers: headers,
                                                 body: body.map { .bytes($0) })
        let sent = Int64(body?.count ?? 0)
        counts.withLock {
            switch request.method {
            case .GET: if request.key == nil { $0.list += 1 } else { $0.get += 1 }
            case .PUT: $0.put += 1
            case .HEAD: $0.head += 1
            case .DELETE, .POST: $0.delete += 1
            default: break
            }
            $0.bytesSent += sent
        }
        let timeout = requestTimeout + Double(body?.count ?? 0) / Double(1 << 20)
        let delegate = Collector(expectBody: request.method != .HEAD)
        let task = http.execute(request: httpRequest, delegate: delegate,
                                deadline: .now() + .milliseconds(Int64(timeout * 1000)))
        let response = try task.futureResult.wait()
        counts.withLock { $0.bytesReceived += Int64(response.body.count) }
        return response
    }

    /// Gathers an answer's body straight into one array (sized from Content-Length), and
    /// fails when fewer bytes arrive than announced.
    private final class Collector: HTTPClientResponseDelegate, @unchecked Sendable {
        typealias Response = S3Response
        // Touched only from the request's event loop, one call after another.
        private var head: HTTPResponseHead?
        private var body: [UInt8] = []
        private var expected: Int?
        private let expectBody: Bool

        init(expectBody: Bool) { self.expectBody = expectBody }

        func didReceiveHead(task: HTTPClient.Task<S3Response>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
            self.head = head
            if expectBody, let length = head.headers.first(name: "content-length").flatMap(Int.init) {
                expected = length
                body.reserveCapacity(length)
            }
            return task.eventLoop.makeSucceededVoidFuture()
        }

        func didReceiveBodyPart(task: HTTPClient.Task<S3Response>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
            buffer.withUnsafeReadableBytes { body.append(contentsOf: $0) }
            return task.eventLoop.makeSucceededVoidFuture()
        }

        func didFinishRequest(task: HTTPClient.Task<S3Response>) throws -> S3Response {
            guard let head else { throw HTTPClientError.remoteConnectionClosed }
            if let expected, body.count != expected { throw TruncatedAnswer(expected: expected, received: body.count) }
            return S3Response(status: Int(head.status.code), headers: head.headers, body: body)
        }
    }

    struct TruncatedAnswer: Error, CustomStringConvertible {
        var expected: Int
        var received: Int
        var description: String { "the answer was cut short (\(received) of \(expected) bytes)" }
    }

    /// The CoffreError of a final answer that is not what the request wanted: the bucket is
    /// missing, the credentials are wrong, the clock is off, the region is wrong, or else the
    /// plain request failure.
    func error(_ request: S3Request, _ response: S3Response) -> CoffreError {
        let (code, message) = response.error
        switch (response.status, code) {
        case (_, "NoSuchBucket"):
            return .s3BucketNotFound(location.bucket, endpoint: location.endpoint)
        case (_, "RequestTimeTooSkewed"):
            return .s3ClockSkew(endpoint: location.endpoint, detail: message)
        case (_, "AuthorizationHeaderMalformed"), (_, "PermanentRedirect"), (_, "IllegalLocationConstraintException"),
             (301, _):
            let region = response.headers.first(name: "x-amz-bucket-region").map { "the bucket is in \($0)" }
            return .s3WrongRegion(location.region, endpoint: location.endpoint, detail: region ?? (message.isEmpty ? code : message))
        case (403, _), (401, _):
            return .s3AccessDenied(code.isEmpty ? "HTTP \(response.status)" : code, endpoint: location.endpoint, detail: message)
        default:
            return .s3RequestFailed(request.label, status: response.status, code: code, detail: message)
        }
    }
}
