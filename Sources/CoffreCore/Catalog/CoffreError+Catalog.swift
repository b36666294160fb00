/// Errors of the catalogs: the SQLite file cannot be opened or is busy, the PostgreSQL server
/// cannot be reached, or a write failed. `location` is the file's path or the server's URL
/// (without its password).
extension CoffreError {
    /// The file is not a catalog, is damaged, or cannot be opened; a database whose tables are
    /// not a catalog's.
    public static func catalogUnreadable(_ location: String, reason: String) -> CoffreError {
        CoffreError(.catalogUnreadable, "The catalog \(location) cannot be read: \(reason)",
                    workaround: "Check that the path is the vault's catalog and that Coffre may read and write it and its folder. If the file is damaged, move it aside and restore it from a backup of the vault folder")
    }

    /// Another process held the catalog's write lock longer than the busy timeout.
    public static func catalogBusy(_ location: String, seconds: Double) -> CoffreError {
        CoffreError(.catalogBusy, "The catalog \(location) stayed locked by another process for more than \(Int(seconds.rounded())) s",
                    workaround: "Retry the command; if it keeps failing, look for a stuck coffre process using the same vault")
    }

    /// A read or write failed for another reason (disk full, I/O error, broken invariant).
    public static func catalogFailed(_ location: String, detail: String) -> CoffreError {
        CoffreError(.catalogFailed, "The catalog \(location) failed: \(detail)",
                    workaround: "Check free space, permissions and the health of the file system or database server, then retry")
    }

    /// The PostgreSQL server did not answer, refused the connection or the login.
    public static func catalogUnreachable(_ location: String, seconds: Double? = nil, detail: String) -> CoffreError {
        let waited = seconds.map { " within \(Int($0.rounded())) s" } ?? ""
        return CoffreError(.catalogUnreachable, "The catalog \(location) cannot be reached\(waited): \(detail)",
                           workaround: "Check that PostgreSQL runs and listens at that address (pg_isready -h HOST -p PORT), that the user may log in to the database (pg_hba.conf, password), and that the network between them is up")
    }

    /// A job's record may no longer be written by this node: the job ended, or another node
    /// took this one for dead and marked it interrupted (its lease ran out).
    public static func jobLeaseLost(_ id: String) -> CoffreError {
        CoffreError(.jobLeaseLost, "Job \(id) is no longer this node's: it ended, or another node took this one for dead and marked the job interrupted",
                    workaround: "Nothing of it was committed; check this node's connection to the catalog (its heartbeats lapsed), then run the operation again if it is still needed")
    }
}
