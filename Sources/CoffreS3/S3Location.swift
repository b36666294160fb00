public import CoffreCore
import Foundation

/// Where an S3 vault is: a bucket and a key prefix on an endpoint, and how to reach it.
///
/// The same for `coffre.json` (`"vault": {"s3": {…}}`) and the command line
/// (`--vault s3://BUCKET/PREFIX --endpoint URL`). Credentials are never part of it: they come
/// from the environment or the credentials file it names.
public struct S3Location: Sendable, Equatable, Codable {
    /// `http://host:port` or `https://host` (no path).
    public var endpoint: String
    public var bucket: String
    /// Every key of the vault starts with `prefix/`; empty for the bucket's root.
    public var prefix: String
    public var region: String
    /// Virtual-hosted (`https://BUCKET.host/key`) instead of path-style (`https://host/BUCKET/key`).
    public var virtualHosted: Bool
    /// A PEM file of the certificate authorities to trust for HTTPS, instead of the system's.
    public var caFile: String?
    /// An AWS-style credentials file (`[profile]` sections with `aws_access_key_id` and
    /// `aws_secret_access_key`); without one, the environment's `AWS_*` variables.
    public var credentialsFile: String?
    /// The section of the credentials file (`AWS_PROFILE`, else `default`).
    public var profile: String?
    /// At most this many requests at once (default 16).
    public var maxRequestsInFlight: Int?
    /// For servers that ignore `If-None-Match: *`: a create is a HEAD, then a PUT. Safe only
    /// when one Coffre process alone ever writes to this vault (docs/s3.md).
    public var singleWriter: Bool

    public static let defaultRegion = "us-east-1"
    public static let defaultMaxRequestsInFlight = 16

    public init(endpoint: String, bucket: String, prefix: String = "", region: String = S3Location.defaultRegion,
                virtualHosted: Bool = false, caFile: String? = nil, credentialsFile: String? = nil,
                profile: String? = nil, maxRequestsInFlight: Int? = nil, singleWriter: Bool = false) {
        self.endpoint = endpoint
        self.bucket = bucket
        self.prefix = prefix
        self.region = region
        self.virtualHosted = virtualHosted
        self.caFile = caFile
        self.credentialsFile = credentialsFile
        self.profile = profile
        self.maxRequestsInFlight = maxRequestsInFlight
        self.singleWriter = singleWriter
    }

    enum CodingKeys: String, CodingKey {
        case endpoint, bucket, prefix, region, virtualHosted, caFile, credentialsFile, profile, maxRequestsInFlight
        case singleWriter
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            endpoint: c.decode(String.self, forKey: .endpoint), bucket: c.decode(String.self, forKey: .bucket),
            prefix: c.decodeIfPresent(String.self, forKey: .prefix) ?? "",
            region: c.decodeIfPresent(String.self, forKey: .region) ?? Self.defaultRegion,
            virtualHosted: c.decodeIfPresent(Bool.self, forKey: .virtualHosted) ?? false,
            caFile: c.decodeIfPresent(String.self, forKey: .caFile),
            credentialsFile: c.decodeIfPresent(String.self, forKey: .credentialsFile),
            profile: c.decodeIfPresent(String.self, forKey: .profile),
            maxRequestsInFlight: c.decodeIfPresent(Int.self, forKey: .maxRequestsInFlight),
            singleWriter: c.decodeIfPresent(Bool.self, forKey: .singleWriter) ?? false)
        try validate()
    }

    /// `s3://BUCKET/PREFIX` (the prefix may be empty or hold `/`).
    public static func isURL(_ text: String) -> Bool { text.hasPrefix("s3://") }

    /// Reads `s3://BUCKET/PREFIX` with the endpoint and options given beside it.
    public init(url: String, endpoint: String, region: String? = nil, credentialsFile: String? = nil,
                caFile: String? = nil, virtualHosted: Bool = false) throws {
        guard Self.isURL(url) else {
            throw CoffreError.invalidS3Location(url, detail: "an S3 vault is named s3://BUCKET/PREFIX")
        }
        let rest = url.dropFirst("s3://".count)
        let bucket = String(rest.prefix { $0 != "/" })
        let prefix = rest.dropFirst(bucket.count).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.init(endpoint: endpoint, bucket: bucket, prefix: prefix, region: region ?? Self.defaultRegion,
                  virtualHosted: virtualHosted, caFile: caFile, credentialsFile: credentialsFile)
        try validate()
    }

    /// `s3://BUCKET/PREFIX`, as users name it.
    public var url: String { "s3://\(bucket)" + (prefix.isEmpty ? "" : "/\(prefix)") }

    /// Checks the bucket name (S3's rules), the prefix and the endpoint.
    public func validate() throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789.-")
        guard (3...63).contains(bucket.count), bucket.allSatisfy(allowed.contains),
              bucket.first?.isLetter == true || bucket.first?.isNumber == true else {
            throw CoffreError.invalidS3Location(url, detail: "'\(bucket)' is not a bucket name (3 to 63 of a-z 0-9 . -)")
        }
        guard !prefix.hasPrefix("/"), !prefix.hasSuffix("/"), !prefix.contains("//") else {
            throw CoffreError.invalidS3Location(url, detail: "the prefix '\(prefix)' has an empty part")
        }
        guard let parsed = URLComponents(string: endpoint), let scheme = parsed.scheme,
              scheme == "http" || scheme == "https", parsed.host?.isEmpty == false,
              parsed.path.isEmpty || parsed.path == "/", parsed.query == nil else {
            throw CoffreError.invalidS3Location(url, detail: "the endpoint '\(endpoint)' is not http(s)://HOST[:PORT]")
        }
        if let count = maxRequestsInFlight, !(1...256).contains(count) {
            throw CoffreError.invalidS3Location(url, detail: "maxRequestsInFlight must be 1 to 256, not \(count)")
        }
    }
}

/// The store-level errors of S3: each has a code of its own and says what to do.
extension CoffreError {
    public static func invalidS3Location(_ text: String, detail: String) -> CoffreError {
        CoffreError(.invalidOption, "\(text) is not a usable S3 vault: \(detail)",
                    workaround: "Name the vault s3://BUCKET/PREFIX and give --endpoint http(s)://HOST[:PORT] (or AWS_ENDPOINT_URL)")
    }
    public static func s3BucketNotFound(_ bucket: String, endpoint: String) -> CoffreError {
        CoffreError(.s3BucketNotFound, "The bucket \(bucket) does not exist at \(endpoint)",
                    workaround: "Create it first (`coffre vault create s3://\(bucket)/PREFIX --create-bucket`, or "
                        + "`aws s3 mb s3://\(bucket) --endpoint-url \(endpoint)`), or fix the bucket name")
    }
    public static func s3AccessDenied(_ code: String, endpoint: String, detail: String) -> CoffreError {
        let what = switch code {
        case "SignatureDoesNotMatch": "the secret access key is wrong (the signature does not match)"
        case "InvalidAccessKeyId": "the access key ID is unknown to the server"
        default: "access is denied (\(code))"
        }
        return CoffreError(.s3AccessDenied, "\(endpoint) refused the request: \(what)\(detail.isEmpty ? "" : ": \(detail)")",
                           workaround: "Check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the credentials file and its "
                               + "profile) and that this user may read and write the bucket")
    }
    public static func s3WrongRegion(_ region: String, endpoint: String, detail: String) -> CoffreError {
        CoffreError(.s3WrongRegion, "The bucket is not in region \(region) at \(endpoint): \(detail)",
                    workaround: "Pass the bucket's region with --region (or \"region\" in coffre.json)")
    }
    public static func s3ClockSkew(endpoint: String, detail: String) -> CoffreError {
        CoffreError(.s3ClockSkew, "\(endpoint) refused the request because this machine's clock differs too much "
                        + "from the server's (RequestTimeTooSkewed)\(detail.isEmpty ? "" : ": \(detail)")",
                    workaround: "Set this machine's clock right (enable NTP, e.g. `timedatectl set-ntp true`) and try again")
    }
    public static func s3Unreachable(_ endpoint: String, detail: String) -> CoffreError {
        CoffreError(.s3Unreachable, "The S3 endpoint \(endpoint) cannot be reached: \(detail)",
                    workaround: "Check the endpoint URL, that the server runs and that this machine can reach it "
                        + "(firewall, DNS, TLS certificate)")
    }
    public static func s3ConditionalCreateUnsupported(_ endpoint: String) -> CoffreError {
        CoffreError(.s3ConditionalCreateUnsupported,
                    "\(endpoint) ignores conditional writes (PUT with If-None-Match: *): two writers could overwrite each other's objects",
                    workaround: "Use a server that honours If-None-Match (Ceph RGW, MinIO, AWS S3 do), or set "
                        + "\"singleWriter\": true for this vault and make sure only one Coffre process ever uses it")
    }
    public static func s3RequestFailed(_ request: String, status: Int, code: String, detail: String) -> CoffreError {
        CoffreError(.s3RequestFailed, "S3 \(request) failed with HTTP \(status)\(code.isEmpty ? "" : " \(code)")"
                        + (detail.isEmpty ? "" : ": \(detail)"),
                    workaround: "See the S3 server's log; if the error is passing, run the operation again")
    }
}
