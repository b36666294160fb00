import CoffreCore
import CoffrePostgres
import CoffreSQLite

/// Where the catalog lives, as `--catalog`, `$COFFRE_CATALOG` or coffre.json's "catalog" name
/// it: a SQLite file (the embedded default, `catalog.sqlite` of the data folder; a relative
/// path is taken from the data folder) or a PostgreSQL database that several nodes share
/// (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`).
enum CatalogBackend: Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(url: String)

    static let defaultFile = "catalog.sqlite"

    init(_ text: String, root: String) {
        if PostgresURL.isPostgres(text) {
            self = .postgres(url: text)
        } else {
            self = .sqlite(path: AppOptions.resolve(text, against: root))
        }
    }

    /// The file, or the URL without its password.
    var description: String {
        switch self {
        case .sqlite(let path): path
        case .postgres(let url): (try? PostgresURL(url).description) ?? "postgres"
        }
    }

    /// The one place a catalog is chosen: opens it and brings its tables up to date.
    func open() async throws -> any Catalog {
        switch self {
        case .sqlite(let path):
            return try SQLiteCatalog(path: path)
        case .postgres(let url):
            return try await PostgresCatalog.open(url: url)
        }
    }
}
