/// Every route the server answers besides the dashboard's, in one table.
public enum APIRoutes {
    public static var all: [APIRoute] {
        system + inventory + policies + protection + files + jobs + history
    }

    static let prefix = "/api/v1"

    /// The methods the API answers for `path` (`/api/v1/vms/prod%2Fweb01/backup` matches
    /// `/api/v1/vms/{vm}/backup`), for 405 answers; empty when no route has this path.
    static func methods(forPath path: String) -> [String] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        return all.filter { route in
            let template = route.path.split(separator: "/", omittingEmptySubsequences: false)
            return template.count == segments.count
                && zip(template, segments).allSatisfy { t, s in t.hasPrefix("{") ? !s.isEmpty : t == s }
        }.map(\.method.rawValue)
    }
}
