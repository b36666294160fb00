@testable import CoffreS3
import Foundation
import Testing

/// Signature V4 against AWS's published test suite ("service" in us-east-1, 2015-08-30) and the
/// S3 documentation's GET example (2013-05-24).
@Suite struct SignatureV4Tests {
    static let suiteCredentials = S3Credentials(accessKeyID: "AKIDEXAMPLE",
                                                secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    static let suiteDate = Date(timeIntervalSince1970: 1_440_938_160)  // 2015-08-30T12:36:00Z
    static let suiteScope = "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"

    struct Vector: Sendable, CustomStringConvertible {
        var name: String
        var method: String
        var path: String
        var query: [(String, String)] = []
        var headers: [String: String] = [:]
        var signedHeaders: String
        var signature: String
        var description: String { name }
    }

    static let vectors: [Vector] = [
        Vector(name: "get-vanilla", method: "GET", path: "/", signedHeaders: "host;x-amz-date",
               signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        Vector(name: "post-vanilla", method: "POST", path: "/", signedHeaders: "host;x-amz-date",
               signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        Vector(name: "get-vanilla-query-order-key-case", method: "GET", path: "/",
               query: [("Param2", "value2"), ("Param1", "value1")], signedHeaders: "host;x-amz-date",
               signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        Vector(name: "post-header-value-case", method: "POST", path: "/", headers: ["My-Header1": "VALUE1"],
               signedHeaders: "host;my-header1;x-amz-date",
               signature: "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"),
        Vector(name: "get-header-value-trim", method: "GET", path: "/",
               headers: ["My-Header1": " value1", "My-Header2": "\"a   b   c\""],
               signedHeaders: "host;my-header1;my-header2;x-amz-date",
               signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
        Vector(name: "get-unreserved", method: "GET",
               path: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
               signedHeaders: "host;x-amz-date",
               signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"),
    ]

    @Test(arguments: vectors)
    func awsTestSuite(_ vector: Vector) {
        var headers = vector.headers
        headers["Host"] = "example.amazonaws.com"
        let signed = SignatureV4(region: "us-east-1", service: "service").sign(
            method: vector.method, path: vector.path, query: vector.query, headers: headers,
            payloadHash: SignatureV4.emptyPayloadHash, date: Self.suiteDate, credentials: Self.suiteCredentials)
        #expect(signed["x-amz-date"] == "20150830T123600Z")
        #expect(signed["authorization"] == "AWS4-HMAC-SHA256 \(Self.suiteScope), SignedHeaders=\(vector.signedHeaders), Signature=\(vector.signature)")
    }

    @Test func theCanonicalRequestOfGetVanilla() {
        let (request, signed) = SignatureV4.canonicalRequest(
            method: "GET", path: "/", query: [],
            headers: ["Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"],
            payloadHash: SignatureV4.emptyPayloadHash)
        #expect(signed == "host;x-amz-date")
        #expect(request == "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let toSign = SignatureV4.stringToSign(timestamp: "20150830T123600Z", scope: "20150830/us-east-1/service/aws4_request",
                                              canonicalRequest: request)
        #expect(toSign.hasSuffix("\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"))
    }

    @Test func theS3DocumentationsRangedGet() {
        // GET /test.txt of examplebucket, bytes 0–9, 2013-05-24, from the S3 API reference.
        let credentials = S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE",
                                        secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        let signed = SignatureV4(region: "us-east-1").sign(
            method: "GET", path: "/test.txt",
            headers: ["Host": "examplebucket.s3.amazonaws.com", "Range": "bytes=0-9",
                      "x-amz-content-sha256": SignatureV4.emptyPayloadHash],
            payloadHash: SignatureV4.emptyPayloadHash, date: Date(timeIntervalSince1970: 1_369_353_600),
            credentials: credentials)
        #expect(signed["authorization"] == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    @Test func keysAreEncodedOnceAndSlashesKept() {
        #expect(SignatureV4.encode("packs/ab") == "packs%2Fab")
        let (request, _) = SignatureV4.canonicalRequest(
            method: "PUT", path: "/bucket/packs/ab/c d+é", query: [("list-type", "2"), ("prefix", "packs/")],
            headers: ["Host": "h"], payloadHash: "UNSIGNED-PAYLOAD")
        #expect(request.hasPrefix("PUT\n/bucket/packs/ab/c%20d%2B%C3%A9\nlist-type=2&prefix=packs%2F\n"))
    }

    @Test func aSessionTokenIsSentAndSignedAndTheSecretNeverPrinted() {
        let credentials = S3Credentials(accessKeyID: "AKID", secretAccessKey: "very-secret", sessionToken: "token")
        let signed = SignatureV4(region: "eu-west-1").sign(
            method: "GET", path: "/", headers: ["Host": "h"], payloadHash: SignatureV4.emptyPayloadHash,
            date: Self.suiteDate, credentials: credentials)
        #expect(signed["x-amz-security-token"] == "token")
        #expect(signed["authorization"]?.contains("SignedHeaders=host;x-amz-date;x-amz-security-token") == true)
        #expect(!"\(credentials)".contains("very-secret"))
        #expect(!signed.values.contains { $0.contains("very-secret") })
    }
}
