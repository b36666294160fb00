import CoffreCore
import Crypto
public import Foundation

/// S3 credentials: from the environment or a credentials file, never from `coffre.json`.
/// Their description never shows the secret.
public struct S3Credentials: Sendable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String { "S3Credentials(\(accessKeyID), secret hidden)" }
}

/// AWS Signature Version 4 (header form), as S3 and S3-compatible servers check it.
///
/// Written here because no maintained S3 package resolves from the mirror (decision note of the
/// S3 issue); checked against AWS's published test suite and S3 examples (SignatureV4Tests).
public struct SignatureV4: Sendable {
    public var region: String
    public var service: String

    public init(region: String, service: String = "s3") {
        self.region = region
        self.service = service
    }

    /// The SHA-256 of an empty payload, in hex.
    public static let emptyPayloadHash = hex(Array(SHA256.hash(data: [UInt8]())))

    /// Signs a request: returns the headers to send — the given ones plus `x-amz-date`,
    /// `x-amz-security-token` (with a session token) and `authorization`. `headers` must hold
    /// `host`; every header given is signed.
    /// - Parameters:
    ///   - path: the request path, not yet encoded (`/bucket/packs/ab/…`); each segment is
    ///     encoded once, `/` kept.
    ///   - query: query parameters, not yet encoded.
    ///   - payloadHash: hex SHA-256 of the body (or `UNSIGNED-PAYLOAD`).
    public func sign(
        method: String, path: String, query: [(String, String)] = [], headers: [String: String],
        payloadHash: String, date: Date, credentials: S3Credentials
    ) -> [String: String] {
        let stamp = compactTimestamp(date) + "Z"
        var all = headers
        all["x-amz-date"] = stamp
        if let token = credentials.sessionToken { all["x-amz-security-token"] = token }
        let (canonical, signed) = Self.canonicalRequest(method: method, path: path, query: query, headers: all,
                                                        payloadHash: payloadHash)
        let day = String(stamp.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let toSign = Self.stringToSign(timestamp: stamp, scope: scope, canonicalRequest: canonical)
        let signature = Self.hex(hmac(signingKey(secret: credentials.secretAccessKey, day: day), toSign))
        all["authorization"] = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), "
            + "SignedHeaders=\(signed), Signature=\(signature)"
        return all
    }

    /// The canonical request and its signed-headers list.
    static func canonicalRequest(
        method: String, path: String, query: [(String, String)], headers: [String: String], payloadHash: String
    ) -> (request: String, signedHeaders: String) {
        let uri = path.isEmpty ? "/" : path.split(separator: "/", omittingEmptySubsequences: false)
            .map { encode(String($0)) }.joined(separator: "/")
        let canonicalQuery = canonicalQuery(query)
        var byName: [String: [String]] = [:]
        for (name, value) in headers { byName[name.lowercased(), default: []].append(normalize(value)) }
        let names = byName.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(byName[$0]!.joined(separator: ","))\n" }.joined()
        let signed = names.joined(separator: ";")
        let request = [method, uri, canonicalQuery, canonicalHeaders, signed, payloadHash].joined(separator: "\n")
        return (request, signed)
    }

    /// Query parameters encoded and sorted, as signed (and as sent, so that both agree).
    static func canonicalQuery(_ query: [(String, String)]) -> String {
        let encoded: [(name: String, value: String)] = query.map { (encode($0.0), encode($0.1)) }
        let sorted = encoded.sorted { (l, r) -> Bool in l.name == r.name ? l.value < r.value : l.name < r.name }
        return sorted.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
    }

    static func stringToSign(timestamp: String, scope: String, canonicalRequest: String) -> String {
        let digest = hex(Array(SHA256.hash(data: Array(canonicalRequest.utf8))))
        return ["AWS4-HMAC-SHA256", timestamp, scope, digest].joined(separator: "\n")
    }

    /// HMAC chain: secret → day → region → service → "aws4_request".
    func signingKey(secret: String, day: String) -> [UInt8] {
        var key = hmac(Array("AWS4\(secret)".utf8), day)
        for part in [region, service, "aws4_request"] { key = hmac(key, part) }
        return key
    }

    private func hmac(_ key: [UInt8], _ text: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: SymmetricKey(data: key)))
    }

    /// RFC 3986 percent-encoding: unreserved characters kept, every other byte `%XX` (upper case).
    static func encode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                 UInt8(ascii: "~"):
                out.unicodeScalars.append(UnicodeScalar(byte))
            default:
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }

    /// A header value as signed: trimmed, runs of spaces made one.
    static func normalize(_ value: String) -> String {
        var out = ""
        var lastWasSpace = false
        for character in value.trimmingCharacters(in: .whitespaces) {
            if character == " " {
                if !lastWasSpace { out.append(character) }
                lastWasSpace = true
            } else {
                out.append(character)
                lastWasSpace = false
            }
        }
        return out
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }
}
