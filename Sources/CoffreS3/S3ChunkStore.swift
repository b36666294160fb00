public import CoffreCore
import Crypto
import Foundation
import NIOHTTP1
import Synchronization

/// A `ChunkStore` in a bucket of any S3-compatible server (Ceph RGW, MinIO, AWS S3): each
/// object of the vault is an S3 object under the location's prefix.
///
/// - A create is a PUT with `If-None-Match: *`, which the server must honour: the store probes
///   it before its first create and refuses a server that ignores it, unless the location says
///   `singleWriter`. (Read-only commands — restore, list, verify — never pay for the probe.)
/// - A PUT is durable when the server answers, so `persist()` has nothing to do.
/// - Bodies are checked by the server (the signed SHA-256 of each PUT) and by the vault (every
///   frame read is verified against its id); a short answer is tried again.
/// - Every method blocks its thread (the protocol's rule); requests are bounded and retried by
///   `S3Client`.
public final class S3ChunkStore: ChunkStore {
    let client: S3Client
    public let s3Location: S3Location
    /// The objects' key prefix: empty or `prefix/`.
    private let keyPrefix: String

    /// Objects deleted per DeleteObjects request (S3's limit; smaller in tests).
    let deleteBatch: Int
    /// Keys per ListObjectsV2 page (S3's limit; smaller in tests).
    let listPage: Int
    /// Whether conditional creates were probed (held while probing: other creators wait).
    private let probed = Mutex(false)

    /// Connects to the bucket and checks it: it exists and the credentials are right. Whether the
    /// server honours conditional creates is checked before the first create.
    public static func open(_ location: S3Location, credentials: S3Credentials,
                            retry: S3RetryPolicy = S3RetryPolicy(), requestTimeout: Double = 60) throws -> S3ChunkStore {
        try open(S3ChunkStore(location, credentials: credentials, retry: retry, requestTimeout: requestTimeout))
    }

    static func open(_ store: S3ChunkStore) throws -> S3ChunkStore {
        try store.checkBucket()
        return store
    }

    /// A store that has not checked its bucket yet (`open` does).
    init(_ location: S3Location, credentials: S3Credentials, retry: S3RetryPolicy, requestTimeout: Double,
         clockOffset: Double = 0, deleteBatch: Int = 1000, listPage: Int = 1000) throws {
        try location.validate()
        self.s3Location = location
        self.client = try S3Client(location: location, credentials: credentials, retry: retry,
                                   requestTimeout: requestTimeout, clockOffset: clockOffset)
        self.deleteBatch = deleteBatch
        self.listPage = listPage
        self.keyPrefix = location.prefix.isEmpty ? "" : location.prefix + "/"
    }

    /// `s3://BUCKET/PREFIX`, as users name the vault (errors of the S3 layer name the endpoint).
    public var location: String { s3Location.url }

    /// The requests sent so far by this process's store.
    public var requestCounts: StoreRequests { client.requestCounts }
    public var requests: StoreRequests? { client.requestCounts }

    /// A request costs far more than the bytes of a gap: whole packs in one GET, dropping up to
    /// 1 MiB between the ranges wanted.
    public var readCoalescing: ReadCoalescing { ReadCoalescing(limit: 25 << 20, gap: 1 << 20) }

    /// Packs of 24 MiB, 1.5× the local default: a third fewer requests per GiB. Not 32 MiB: a
    /// pack's buffer would pass glibc's largest mmap threshold (32 MiB), and every pack would be
    /// a fresh mapping to fault in — 2.5 s more kernel time per 4 GiB backup
    /// (docs/decisions/0019-reads-planned-by-pack.md).
    public var preferredPackSize: Int? { 24 << 20 }

    /// Two PUTs at once keep the link busy while one waits for the server.
    public var concurrentWrites: Int { 2 }

    // MARK: The bucket

    /// Creates the bucket (tests, benchmarks and `coffre vault create --create-bucket`).
    /// An existing bucket of this user is not an error.
    public static func createBucket(_ location: S3Location, credentials: S3Credentials) throws {
        let store = try S3ChunkStore(location, credentials: credentials, retry: S3RetryPolicy(), requestTimeout: 60)
        var request = S3Request(method: .PUT, key: nil)
        if location.region != S3Location.defaultRegion {
            request.body = Array(("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                + "<LocationConstraint>\(location.region.xmlEscaped)</LocationConstraint></CreateBucketConfiguration>").utf8)
        }
        let response = try store.client.send(request)
        guard response.status == 200 || response.error.code == "BucketAlreadyOwnedByYou" else {
            throw store.client.error(request, response)
        }
    }

    /// HEAD on the bucket: missing bucket, wrong credentials or region each get their error.
    /// A HEAD answer has no body, so the error's code is read from a GET when HEAD fails.
    func checkBucket() throws {
        let head = S3Request(method: .HEAD, key: nil)
        let response = try client.send(head)
        if response.status == 200 { return }
        var probe = S3Request(method: .GET, key: nil)
        probe.query = [("list-type", "2"), ("max-keys", "1"), ("prefix", keyPrefix)]
        let answer = try client.send(probe)
        if answer.status == 200 { return }
        if answer.status == 404 && answer.error.code.isEmpty {
            throw CoffreError.s3BucketNotFound(s3Location.bucket, endpoint: s3Location.endpoint)
        }
        throw client.error(probe, answer)
    }

    /// Puts a probe object twice with `If-None-Match: *`: the second must be refused. Once per
    /// store, before its first create.
    func probeConditionalCreate() throws {
        try probed.withLock { done in
            guard !done else { return }
            let key = ".coffre-probe/" + UUID().uuidString.lowercased()
            defer { try? delete([key]) }
            guard try create(keyPrefix + key, [1]) else {
                throw CoffreError.s3RequestFailed("PUT \(keyPrefix)\(key)", status: 412, code: "PreconditionFailed",
                                                  detail: "a new probe object was refused as existing")
            }
            if try create(keyPrefix + key, [2]) { throw CoffreError.s3ConditionalCreateUnsupported(s3Location.endpoint) }
            done = true
        }
    }

    // MARK: ChunkStore

    @discardableResult
    public func put(_ key: String, _ bytes: [UInt8], mode: PutMode, durability: Durability) throws -> Bool {
        let full = keyPrefix + key
        if mode == .create && s3Location.singleWriter {
            // The documented fallback for servers without conditional writes: one writer only.
            if try head(full) != nil { return false }
            return try replace(full, bytes)
        }
        if mode == .create { try probeConditionalCreate() }
        return try mode == .create ? create(full, bytes) : replace(full, bytes)
    }

    /// The PUT of an object's bytes.
    private static func putRequest(_ fullKey: String, _ bytes: [UInt8]) -> S3Request {
        var request = S3Request(method: .PUT, key: fullKey, body: bytes)
        request.headers["content-type"] = "application/octet-stream"
        return request
    }

    /// A PUT whatever is there.
    private func replace(_ fullKey: String, _ bytes: [UInt8]) throws -> Bool {
        let request = Self.putRequest(fullKey, bytes)
        let response = try client.send(request)
        guard response.status == 200 else { throw client.error(request, response) }
        return true
    }

    /// A PUT with `If-None-Match: *`: false when the key exists.
    private func create(_ fullKey: String, _ bytes: [UInt8]) throws -> Bool {
        var request = Self.putRequest(fullKey, bytes)
        request.headers["if-none-match"] = "*"
        // A try whose answer was lost may have created the object: a later 412 is then ours
        // if the stored object's ETag is the MD5 of these bytes.
        var maybeStored = false
        let response = try client.send(request) { maybeStored = true }
        switch response.status {
        case 200: return true
        case 412:
            if maybeStored, let etag = try head(fullKey)?.etag,
               etag == "\"" + SignatureV4.hex(Array(Insecure.MD5.hash(data: bytes))) + "\"" {
                return true
            }
            return false
        default: throw client.error(request, response)
        }
    }

    public func get(_ key: String, range: Range<Int64>?) throws -> [UInt8]? {
        let full = keyPrefix + key
        if let range, range.isEmpty {
            // S3 has no empty range: check that the object exists and is long enough.
            guard let object = try head(full) else { return nil }
            guard range.lowerBound <= object.size else { throw rangeError(key, range, size: object.size) }
            return []
        }
        var request = S3Request(method: .GET, key: full)
        if let range { request.headers["range"] = "bytes=\(range.lowerBound)-\(range.upperBound - 1)" }
        let response = try client.send(request)
        switch response.status {
        case 200 where range == nil: return response.body
        case 206, 200:
            // A range reaching past the end comes back short: the contract calls it an error.
            guard let range, response.body.count == Int(range.count) else {
                throw rangeError(key, range ?? 0..<0, size: Int64(response.body.count))
            }
            return response.body
        case 404 where response.error.code != "NoSuchBucket": return nil
        case 416: throw rangeError(key, range ?? 0..<0, size: nil)
        default: throw client.error(request, response)
        }
    }

    private func rangeError(_ key: String, _ range: Range<Int64>, size: Int64?) -> CoffreError {
        CoffreError(.ioError, "read \(range) of \(key) in \(location): the object is shorter"
                        + (size.map { " (\($0) bytes in the answer)" } ?? ""))
    }

    /// An object's size and ETag, or nil when it is absent.
    func head(_ fullKey: String) throws -> (size: Int64, etag: String)? {
        let request = S3Request(method: .HEAD, key: fullKey)
        let response = try client.send(request)
        switch response.status {
        case 200:
            let size = response.headers.first(name: "content-length").flatMap(Int64.init) ?? 0
            return (size, response.headers.first(name: "etag") ?? "")
        case 404: return nil
        default: throw client.error(request, response)
        }
    }

    public func list(prefix: String) throws -> [StoredObject] {
        var objects: [StoredObject] = []
        var token: String?
        repeat {
            var request = S3Request(method: .GET, key: nil)
            request.query = [("list-type", "2"), ("max-keys", "\(listPage)"), ("prefix", keyPrefix + prefix)]
            if let token { request.query.append(("continuation-token", token)) }
            let response = try client.send(request)
            guard response.status == 200, let xml = S3XML.parse(response.body), xml.name == "ListBucketResult" else {
                if response.status == 200 { throw CoffreError.s3RequestFailed(request.label, status: 200, code: "", detail: "an unreadable listing") }
                throw client.error(request, response)
            }
            for entry in xml.children("Contents") {
                guard let key = entry.text("Key"), key.hasPrefix(keyPrefix) else { continue }
                objects.append(StoredObject(key: String(key.dropFirst(keyPrefix.count)),
                                            size: entry.text("Size").flatMap(Int64.init) ?? 0))
            }
            token = xml.text("IsTruncated") == "true" ? xml.text("NextContinuationToken") : nil
        } while token != nil
        objects.sort { $0.key < $1.key }
        return objects
    }

    public func delete(_ keys: [String]) throws {
        var start = 0
        while start < keys.count {
            let batch = keys[start..<min(start + deleteBatch, keys.count)]
            start += batch.count
            let body = Array(("<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
                + batch.map { "<Object><Key>\((keyPrefix + $0).xmlEscaped)</Key></Object>" }.joined()
                + "</Delete>").utf8)
            var request = S3Request(method: .POST, key: nil, query: [("delete", "")], body: body)
            request.headers["content-md5"] = Data(Insecure.MD5.hash(data: body)).base64EncodedString()
            request.headers["content-type"] = "application/xml"
            let response = try client.send(request)
            guard response.status == 200 else { throw client.error(request, response) }
            // Quiet mode lists only the keys that could not be deleted (an absent key is not one).
            if let failed = S3XML.parse(response.body)?.children("Error").first {
                throw CoffreError.s3RequestFailed("DeleteObjects", status: 200, code: failed.text("Code") ?? "",
                                                  detail: "\(failed.text("Key") ?? ""): \(failed.text("Message") ?? "")")
            }
        }
    }

    /// An S3 PUT is durable when it is answered: nothing to wait for.
    public func persist() throws {}
}
