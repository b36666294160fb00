import Foundation

/// The real S3 server that `scripts/s3-harness up` starts (a Ceph RADOS Gateway), as tests
/// see it: its endpoint and its test user's keys, read from the harness's env file or from
/// `COFFRE_S3_*` variables.
///
/// Tests that need it run when it is up. In CI (`COFFRE_CI`) they run whatever happens, so a
/// gateway that is not up fails them instead of skipping them.
public enum S3TestGateway {
    static let environment = ProcessInfo.processInfo.environment
    /// The harness's folder (`$COFFRE_S3_DIR/env` holds the variables).
    public static let folder = environment["COFFRE_S3_DIR"] ?? "/tmp/coffre-s3"

    static let variables = harnessVariables(folder: folder, prefix: "COFFRE_S3_")

    public static var endpoint: String { variables["COFFRE_S3_ENDPOINT"] ?? "http://127.0.0.1:7480" }
    /// The harness's second gateway on the same cluster, which outage tests stop and start.
    public static var secondEndpoint: String? { variables["COFFRE_S3_ENDPOINT_B"] }
    /// Gateway a over HTTPS, and the file of the CA that signed its certificate.
    public static var tlsEndpoint: String? { variables["COFFRE_S3_TLS_ENDPOINT"] }
    public static var caFile: String? { variables["COFFRE_S3_CA_FILE"] }
    public static var accessKey: String { variables["COFFRE_S3_ACCESS_KEY"] ?? "" }
    public static var secretKey: String { variables["COFFRE_S3_SECRET_KEY"] ?? "" }

    public static let isUp = variables["COFFRE_S3_ENDPOINT"] != nil
    public static let required = environment["COFFRE_CI"] != nil
    /// Whether the live S3 tests run.
    public static let live = isUp || required

    /// The bucket the tests share; each test works under a prefix of its own.
    public static let bucket = "coffre-tests"

    /// A new prefix, unique to one test.
    public static func newPrefix(_ label: String) -> String {
        "\(label)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

/// The variables a harness script wrote to `folder/env` (`export NAME=VALUE` lines), overridden
/// by the process's own variables that start with `prefix`.
func harnessVariables(folder: String, prefix: String) -> [String: String] {
    var values: [String: String] = [:]
    if let text = try? String(contentsOfFile: folder + "/env", encoding: .utf8) {
        for line in text.split(separator: "\n") {
            let words = line.replacingOccurrences(of: "export ", with: "").split(separator: "=", maxSplits: 1)
            if words.count == 2 { values[String(words[0])] = String(words[1]) }
        }
    }
    for (name, value) in ProcessInfo.processInfo.environment where name.hasPrefix(prefix) { values[name] = value }
    return values
}
