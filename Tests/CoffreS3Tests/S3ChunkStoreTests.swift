import CoffreCore
@testable import CoffreS3
import CoffreStorage
import CoffreTesting
import Foundation
import Testing

/// The chunk-store contract and S3's own behaviour, on the real Ceph RADOS Gateway of
/// `scripts/s3-harness`.
@Suite(.enabled(if: S3TestGateway.live, "needs scripts/s3-harness up"))
struct S3ChunkStoreTests {
    @Test("conformance, under a key prefix", arguments: ChunkStoreConformance.checks.map(\.name))
    func conformance(_ check: String) throws {
        try ChunkStoreConformance.checks.first { $0.name == check }!.run(TestS3.store())
    }

    @Test("conformance at a bucket's root (no prefix)")
    func bucketRoot() throws {
        let bucket = "coffre-root-\(UUID().uuidString.prefix(8).lowercased())"
        let location = S3Location(endpoint: S3TestGateway.endpoint, bucket: bucket)
        try S3ChunkStore.createBucket(location, credentials: TestS3.credentials)
        for check in ChunkStoreConformance.checks where check.name != "large objects" {
            let store = try S3ChunkStore.open(location, credentials: TestS3.credentials)
            try check.run(store)
            try store.delete(store.list(prefix: "").map(\.key))
            #expect(try store.list(prefix: "").isEmpty)
        }
    }

    @Test("listings page through ListObjectsV2 continuation tokens; deletes go in batches")
    func pagesAndBatches() throws {
        let store = try TestS3.store(deleteBatch: 4, listPage: 7)
        let keys = (0..<25).map { "many/\(String($0).leftPadded(to: 3))" }
        DispatchQueue.concurrentPerform(iterations: keys.count) { i in _ = try? store.put(keys[i], [UInt8(i)], mode: .create) }
        let before = store.requestCounts
        #expect(try store.list(prefix: "many/").map(\.key) == keys)
        #expect(store.requestCounts.since(before).list == 4, "25 keys, 7 a page")
        let deleting = store.requestCounts
        try store.delete(Array(keys[0..<10]) + ["many/absent"])
        #expect(store.requestCounts.since(deleting).delete == 3, "11 keys, 4 a batch")
        #expect(try store.list(prefix: "many/").map(\.key) == Array(keys[10...]))
    }

    @Test("the prefix keeps vaults apart: one store never sees another's objects")
    func prefixesAreApart() throws {
        let name = S3TestGateway.newPrefix("apart")
        let a = try TestS3.store(prefix: name)
        let b = try TestS3.store(prefix: name + "x")
        try a.put("k", [1], mode: .create)
        try b.put("k", [2], mode: .create)
        #expect(try a.list(prefix: "").map(\.key) == ["k"])
        #expect(try a.get("k") == [1] && b.get("k") == [2])
    }

    @Test("keys with characters that need encoding")
    func encodedKeys() throws {
        let store = try TestS3.store()
        let key = "odd/a b+c=d&e~f%g"
        try store.put(key, [9], mode: .create)
        #expect(try store.get(key) == [9])
        #expect(try store.list(prefix: "odd/").map(\.key) == [key])
        try store.delete([key])
        #expect(try store.get(key) == nil)
    }

    @Test("a missing bucket is S3BucketNotFound")
    func missingBucket() throws {
        let location = TestS3.location(bucket: "coffre-no-such-bucket")
        let error = TestS3.error { _ = try S3ChunkStore.open(location, credentials: TestS3.credentials) }
        #expect(error?.code == .s3BucketNotFound)
        #expect(error?.workaround?.contains("Create it") == true)
    }

    @Test("a wrong secret is S3AccessDenied naming the signature, and never shows the secret")
    func wrongSecret() throws {
        _ = TestS3.sharedBucket
        let secret = "not-the-secret-key-4242"
        let wrong = S3Credentials(accessKeyID: S3TestGateway.accessKey, secretAccessKey: secret)
        let error = TestS3.error { _ = try S3ChunkStore.open(TestS3.location(), credentials: wrong) }
        #expect(error?.code == .s3AccessDenied)
        #expect(error?.message.contains("secret access key is wrong") == true, "\(String(describing: error))")
        #expect(error.map { !$0.diagnostic.contains(secret) } == true)
        #expect(!"\(wrong)".contains(secret))
    }

    @Test("an unknown access key is S3AccessDenied")
    func unknownKey() throws {
        let wrong = S3Credentials(accessKeyID: "NOSUCHKEY", secretAccessKey: "x")
        let error = TestS3.error { _ = try S3ChunkStore.open(TestS3.location(), credentials: wrong) }
        #expect(error?.code == .s3AccessDenied)
        #expect(error?.message.contains("access key ID is unknown") == true, "\(String(describing: error))")
    }

    @Test("a clock an hour off is S3ClockSkew")
    func clockSkew() throws {
        _ = TestS3.sharedBucket
        let store = try S3ChunkStore(TestS3.location(), credentials: TestS3.credentials, retry: TestS3.quickRetry,
                                     requestTimeout: 10, clockOffset: 3600)
        let error = TestS3.error { _ = try S3ChunkStore.open(store) }
        #expect(error?.code == .s3ClockSkew, "\(String(describing: error))")
    }

    @Test("an endpoint where nothing listens is S3Unreachable, after bounded retries")
    func unreachable() throws {
        let location = TestS3.location(endpoint: "http://127.0.0.1:\(closedPort())")
        let started = Date()
        let error = TestS3.error {
            _ = try S3ChunkStore.open(location, credentials: TestS3.credentials, retry: TestS3.quickRetry, requestTimeout: 5)
        }
        #expect(error?.code == .s3Unreachable, "\(String(describing: error))")
        #expect(error?.message.contains("gave up after") == true, "\(String(describing: error))")
        #expect(Date().timeIntervalSince(started) < 30)
    }

    @Test("requests are counted by kind, with the bytes sent")
    func counting() throws {
        let store = try TestS3.store()
        let before = store.requestCounts
        try store.put("c", Array(repeating: 7, count: 1000), mode: .replace)
        _ = try store.get("c", range: 0..<10)
        _ = try store.list(prefix: "")
        let d = store.requestCounts.since(before)
        #expect(d.put == 1 && d.get == 1 && d.list == 1 && d.retries == 0)
        #expect(d.bytesSent == 1000)
        #expect(d.total == 3)
    }

    @Test("conditional creates are probed once, before the first create; reads never pay for it")
    func probeOnFirstCreate() throws {
        let store = try TestS3.store()
        let opened = store.requestCounts
        _ = try store.get("absent")
        _ = try store.list(prefix: "")
        try store.put("r", [1], mode: .replace)
        let reads = store.requestCounts.since(opened)
        #expect(reads.put == 1 && reads.delete == 0, "\(reads)")
        #expect(try store.put("c", [1], mode: .create))
        let first = store.requestCounts.since(opened).since(reads)
        #expect(first.put == 3 && first.delete == 1, "\(first)")  // two probe PUTs, its DELETE, the create
        #expect(try !store.put("c", [2], mode: .create))
        #expect(try store.put("d", [3], mode: .create))
        let later = store.requestCounts.since(opened).since(reads).since(first)
        #expect(later.put == 2 && later.delete == 0, "\(later)")
        #expect(try store.get("c") == [1])
        #expect(try store.list(prefix: "").map(\.key) == ["c", "d", "r"])  // the probe's object is gone
        try store.delete(["c", "d", "r"])
    }

    @Test("HTTPS with the CA file that signed the gateway's certificate: a vault's operations work")
    func https() throws {
        _ = TestS3.sharedBucket
        let endpoint = try #require(S3TestGateway.tlsEndpoint, "the harness serves HTTPS")
        var location = TestS3.location(endpoint: endpoint)
        location.caFile = S3TestGateway.caFile
        let store = try S3ChunkStore.open(location, credentials: TestS3.credentials)
        let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        #expect(try store.put("tls/a", bytes, mode: .create))
        #expect(try store.get("tls/a", range: 1000..<2000) == Array(bytes[1000..<2000]))
        #expect(try store.list(prefix: "tls/").map(\.key) == ["tls/a"])
        try store.delete(["tls/a"])
        #expect(try store.get("tls/a") == nil)
    }

    @Test("HTTPS without the CA file: S3Unreachable names TLS and --ca-file, without retries")
    func httpsUntrusted() throws {
        let endpoint = try #require(S3TestGateway.tlsEndpoint, "the harness serves HTTPS")
        let started = Date()
        let error = TestS3.error {
            _ = try S3ChunkStore.open(TestS3.location(endpoint: endpoint), credentials: TestS3.credentials)
        }
        #expect(error?.code == .s3Unreachable, "\(String(describing: error))")
        #expect(error?.message.contains("TLS") == true && error?.message.contains("--ca-file") == true,
                "\(String(describing: error))")
        #expect(error?.message.contains("not trusted") == true, "\(String(describing: error))")
        // One connection timeout (AsyncHTTPClient tries the handshake until then), not 8 tries.
        #expect(Date().timeIntervalSince(started) < 15, "\(String(describing: error))")
    }

    @Test("a single-writer location creates with HEAD then PUT, under its prefix, without the probe")
    func singleWriter() throws {
        _ = TestS3.sharedBucket
        var location = TestS3.location()
        location.singleWriter = true
        let store = try S3ChunkStore.open(location, credentials: TestS3.credentials)
        let opened = store.requestCounts
        #expect(try store.put("a/b", [1, 2], mode: .create))
        #expect(try !store.put("a/b", [3], mode: .create))
        let d = store.requestCounts.since(opened)
        #expect(d.put == 1 && d.head == 2, "\(d)")
        #expect(try store.get("a/b") == [1, 2])
        // Under the location's prefix, as any other object: another store of it sees it.
        let other = try TestS3.store(prefix: location.prefix)
        #expect(try other.list(prefix: "").map(\.key) == ["a/b"])
        try store.delete(["a/b"])
    }
}

/// A loopback port nothing listens on (bound, then closed).
func closedPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    close(fd)
    return Int(UInt16(bigEndian: address.sin_port))
}

@Suite(.enabled(if: S3TestGateway.live, "needs scripts/s3-harness up"))
struct S3VaultStatsTests {
    @Test("vault stats shows the objects and the requests of the last backup and collection")
    func requestsOfTheLastOperations() async throws {
        let folder = NSTemporaryDirectory() + "coffre-s3stats-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try TestS3.store()
        defer { try? store.delete(store.list(prefix: "").map(\.key)) }
        let vault = try Vault.create(in: store, cacheDirectory: folder, blockSize: 16 << 10)
        var generator = SeededGenerator(seed: 5)
        let disk = generator.bytes(3 << 20)
        let before = store.requestCounts
        let point = try await vault.backup(item: "vm", disks: [MemoryBlockDevice(name: "d", bytes: disk)])
        let sent = store.requestCounts.since(before)
        _ = try vault.collectGarbage()
        let stats = try vault.stats()
        let backup = try #require(stats.lastBackup)
        #expect(backup.point == point.id && backup.bytesRead == Int64(disk.count))
        #expect(backup.requests.put >= 2 && backup.requests.put <= sent.put, "\(backup.requests) vs \(sent)")
        #expect(backup.requests.bytesSent >= Int64(disk.count), "random data: every byte stored")
        let collection = try #require(stats.lastCollection)
        #expect(collection.requests.list >= 1 && collection.point == nil)
        let objects = try store.list(prefix: "")
        #expect(stats.objects == objects.count && stats.objectBytes == objects.reduce(0) { $0 + $1.size })
        // A store that does not count requests records none.
        let local = try Vault.create(in: MemoryChunkStore(), cacheDirectory: folder)
        _ = try await local.backup(item: "vm", disks: [MemoryBlockDevice(name: "d", bytes: disk)])
        #expect(try local.stats().lastBackup == nil)
    }
}
