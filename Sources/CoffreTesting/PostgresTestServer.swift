import Foundation

/// The real PostgreSQL that `scripts/pg-harness up` starts, as tests see it: its URL, read from
/// the harness's env file or from `COFFRE_PG_URL`.
///
/// Tests that need it run when it is up. In CI (`COFFRE_CI`) they run whatever happens, so a
/// server that is not up fails them instead of skipping them.
public enum PostgresTestServer {
    static let environment = ProcessInfo.processInfo.environment
    /// The harness's folder (`$COFFRE_PG_DIR/env` holds the variables).
    public static let folder = environment["COFFRE_PG_DIR"] ?? "/tmp/coffre-pg"

    static let variables = harnessVariables(folder: folder, prefix: "COFFRE_PG_")

    /// `postgres://coffre@127.0.0.1:PORT/coffre`: a role that may create databases.
    public static var url: String { variables["COFFRE_PG_URL"] ?? "postgres://coffre@127.0.0.1:5432/coffre" }

    public static let isUp = variables["COFFRE_PG_URL"] != nil
    public static let required = environment["COFFRE_CI"] != nil
    /// Whether the tests on PostgreSQL run.
    public static let live = isUp || required

    /// `url` with its database replaced by `database`.
    public static func url(database: String) -> String {
        guard let slash = url.range(of: "/", options: .backwards) else { return url }
        return url[..<slash.upperBound] + database
    }

    /// A new database name, unique to one test.
    public static func newDatabaseName(_ label: String) -> String {
        "coffre_\(label)_\(UUID().uuidString.prefix(8).lowercased())"
    }
}
