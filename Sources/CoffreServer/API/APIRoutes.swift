/// Every route the server answers besides the dashboard's, in one table.
public enum APIRoutes {
    public static var all: [APIRoute] {
        system + inventory + policies + protection + jobs
    }

    static let prefix = "/api/v1"
}
