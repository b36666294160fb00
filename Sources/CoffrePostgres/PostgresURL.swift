import CoffreCore
import Foundation

/// A catalog's address: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE]`
/// (`postgresql://` too). The password may also come from `PGPASSWORD`. `sslmode` is `disable`
/// (the default) or `require`: no `prefer`, so that what is asked is what is done.
public struct PostgresURL: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    public var requiresTLS: Bool

    /// Whether `text` names a PostgreSQL catalog rather than a file.
    public static func isPostgres(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// - Throws: `InvalidArgument` naming what is wrong.
    public init(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        func invalid(_ why: String) -> CoffreError {
            CoffreError(.invalidArgument, "The catalog URL '\(Self.redacted(text))' is not valid: \(why)",
                        workaround: "Write it as postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE, for example postgres://coffre@127.0.0.1:5432/coffre")
        }
        guard Self.isPostgres(text), let components = URLComponents(string: text) else {
            throw invalid("it must start with postgres://")
        }
        guard let host = components.host, !host.isEmpty else { throw invalid("it names no host") }
        guard let user = components.user, !user.isEmpty else { throw invalid("it names no user (postgres://USER@HOST/DATABASE)") }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else { throw invalid("it names no database (…/DATABASE)") }
        if let port = components.port, !(1...65535).contains(port) { throw invalid("the port \(port) is out of range") }
        var requiresTLS = false
        for item in components.queryItems ?? [] {
            switch (item.name, item.value) {
            case ("sslmode", "disable"): requiresTLS = false
            case ("sslmode", "require"): requiresTLS = true
            case ("sslmode", let value): throw invalid("sslmode=\(value ?? "") is not supported (disable or require)")
            default: throw invalid("the parameter '\(item.name)' is not supported (only sslmode)")
            }
        }
        self.user = user
        self.password = components.password ?? environment["PGPASSWORD"]
        self.host = host
        self.port = components.port ?? 5432
        self.database = database
        self.requiresTLS = requiresTLS
    }

    /// The URL without its password.
    public var description: String {
        "postgres://\(user)@\(host):\(port)/\(database)\(requiresTLS ? "?sslmode=require" : "")"
    }

    /// `text` with a password in it replaced by `***`, for messages.
    public static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "***"
        return components.string ?? text
    }
}
