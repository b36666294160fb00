import CoffreCore
@testable import CoffreS3
import Foundation
import NIOHTTP1
import Testing

@Suite struct S3LocationTests {
    @Test("s3://BUCKET/PREFIX is read into a bucket and a prefix")
    func urls() throws {
        let a = try S3Location(url: "s3://backups/site-a/vault/", endpoint: "http://127.0.0.1:7480")
        #expect(a.bucket == "backups" && a.prefix == "site-a/vault" && a.region == "us-east-1")
        #expect(a.url == "s3://backups/site-a/vault")
        let b = try S3Location(url: "s3://backups", endpoint: "https://s3.example.org", region: "eu-west-3")
        #expect(b.prefix == "" && b.url == "s3://backups" && b.region == "eu-west-3")
    }

    @Test("bad names and endpoints are refused with the form to use",
          arguments: [("s3://Up/x", "http://h"), ("s3://ab/x", "http://h"), ("s3://ok-bucket/a//b", "http://h"),
                      ("s3://ok-bucket/x", "ftp://h"), ("s3://ok-bucket/x", "http://h/path"), ("/srv/vault", "http://h")])
    func refused(_ url: String, _ endpoint: String) {
        #expect(throws: CoffreError.self) { try S3Location(url: url, endpoint: endpoint) }
    }

    @Test("coffre.json's section decodes with defaults, and checks what it reads")
    func decoding() throws {
        let json = #"{"endpoint": "http://127.0.0.1:7480", "bucket": "vaults", "prefix": "a"}"#
        let location = try JSONDecoder().decode(S3Location.self, from: Data(json.utf8))
        #expect(location == S3Location(endpoint: "http://127.0.0.1:7480", bucket: "vaults", prefix: "a"))
        #expect(throws: CoffreError.self) {
            try JSONDecoder().decode(S3Location.self, from: Data(#"{"endpoint": "x", "bucket": "vaults"}"#.utf8))
        }
    }

    @Test("path-style and virtual-hosted requests name the bucket where S3 expects it")
    func addressing() throws {
        let credentials = S3Credentials(accessKeyID: "k", secretAccessKey: "s")
        let path = try S3Client(location: S3Location(endpoint: "http://127.0.0.1:7480", bucket: "b1"), credentials: credentials)
        #expect(path.base == "http://127.0.0.1:7480" && path.host == "127.0.0.1:7480")
        #expect(path.paths("packs/ab/x y").url == "/b1/packs/ab/x%20y")
        #expect(path.paths("packs/ab/x y").signed == "/b1/packs/ab/x y")
        #expect(path.paths(nil).url == "/b1")
        let virtual = try S3Client(location: S3Location(endpoint: "https://s3.example.org:443", bucket: "b1", virtualHosted: true),
                                   credentials: credentials)
        #expect(virtual.base == "https://b1.s3.example.org" && virtual.host == "b1.s3.example.org")
        #expect(virtual.paths("k").url == "/k" && virtual.paths(nil).url == "/")
    }

    @Test("credentials from the environment, or a file's profile; a missing one says what to set")
    func credentials() throws {
        let env = try S3Credentials.load(file: nil, environment: [
            "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "SECRET", "AWS_SESSION_TOKEN": "TOKEN"])
        #expect(env.accessKeyID == "AKID" && env.secretAccessKey == "SECRET" && env.sessionToken == "TOKEN")
        let file = NSTemporaryDirectory() + "coffre-credentials-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try """
            # comment
            [default]
            aws_access_key_id = DEF
            aws_secret_access_key = defsecret
            [profile backup]
            aws_access_key_id=BK
            aws_secret_access_key=bksecret
            """.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try S3Credentials.load(file: file, environment: [:]).accessKeyID == "DEF")
        #expect(try S3Credentials.load(file: file, profile: "backup", environment: [:]).secretAccessKey == "bksecret")
        #expect(try S3Credentials.load(file: file, environment: ["AWS_PROFILE": "backup"]).accessKeyID == "BK")
        let missing = #expect(throws: CoffreError.self) { try S3Credentials.load(file: nil, environment: [:]) }
        #expect(missing?.message.contains("AWS_ACCESS_KEY_ID") == true)
        #expect(throws: CoffreError.self) { try S3Credentials.load(file: file, profile: "none", environment: [:]) }
    }

    @Test("backoff grows, stays under its cap, and is jittered")
    func backoff() {
        let policy = S3RetryPolicy(maxAttempts: 8, baseDelay: 0.1, maxDelay: 2, maxTotal: 60)
        for attempt in 1...8 {
            let cap = min(2, 0.1 * pow(2, Double(attempt - 1)))
            let waits = (0..<50).map { _ in policy.delay(beforeRetry: attempt) }
            #expect(waits.allSatisfy { $0 >= 0 && $0 <= cap })
            #expect(Set(waits).count > 1, "jitter")
        }
    }
}

@Suite struct S3ErrorMappingTests {
    static let client = try! S3Client(location: S3Location(endpoint: "https://s3.eu-west-3.amazonaws.com", bucket: "b1",
                                                           region: "us-east-1"),
                                      credentials: S3Credentials(accessKeyID: "k", secretAccessKey: "s"))

    static func answer(_ status: Int, _ code: String, headers: [(String, String)] = []) -> S3Response {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>\(code)</Code><Message>m</Message></Error>"
        return S3Response(status: status, headers: .init(headers), body: Array(body.utf8))
    }

    @Test("AWS's answers to a wrong region are S3WrongRegion, naming the bucket's region when given")
    func wrongRegion() {
        let request = S3Request(method: .GET, key: "k")
        let malformed = Self.client.error(request, Self.answer(400, "AuthorizationHeaderMalformed"))
        #expect(malformed.code == .s3WrongRegion && malformed.workaround?.contains("--region") == true)
        let redirect = Self.client.error(request, Self.answer(301, "PermanentRedirect",
                                                              headers: [("x-amz-bucket-region", "eu-west-3")]))
        #expect(redirect.code == .s3WrongRegion && redirect.message.contains("eu-west-3"), "\(redirect)")
    }

    @Test("other answers map to their own codes")
    func others() {
        let request = S3Request(method: .PUT, key: "k")
        #expect(Self.client.error(request, Self.answer(404, "NoSuchBucket")).code == .s3BucketNotFound)
        #expect(Self.client.error(request, Self.answer(403, "RequestTimeTooSkewed")).code == .s3ClockSkew)
        #expect(Self.client.error(request, Self.answer(403, "AccessDenied")).code == .s3AccessDenied)
        let other = Self.client.error(request, Self.answer(400, "InvalidArgument"))
        #expect(other.code == .s3RequestFailed && other.message.contains("InvalidArgument"))
    }
}
