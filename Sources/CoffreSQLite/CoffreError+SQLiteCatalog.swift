public import CoffreCore

/// Errors of the SQLite catalog: the file cannot be opened, is busy, or a write failed.
extension CoffreError {
    /// The file is not a catalog, is damaged, or cannot be opened.
    public static func catalogUnreadable(_ path: String, reason: String) -> CoffreError {
        CoffreError(.catalogUnreadable, "The catalog \(path) cannot be read: \(reason)",
                    workaround: "Check that the path is the vault's catalog and that Coffre may read and write it and its folder. If the file is damaged, move it aside and restore it from a backup of the vault folder")
    }

    /// Another process held the catalog's write lock longer than the busy timeout.
    public static func catalogBusy(_ path: String, seconds: Double) -> CoffreError {
        CoffreError(.catalogBusy, "The catalog \(path) stayed locked by another process for more than \(Int(seconds.rounded())) s",
                    workaround: "Retry the command; if it keeps failing, look for a stuck coffre process using the same vault")
    }

    /// A read or write failed for another reason (disk full, I/O error, broken invariant).
    public static func catalogFailed(_ path: String, detail: String) -> CoffreError {
        CoffreError(.catalogFailed, "The catalog \(path) failed: \(detail)",
                    workaround: "Check free space, permissions and the health of the file system, then retry")
    }
}
