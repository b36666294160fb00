import CShims

/// What this binary was built from.
public enum BuildInfo {
    /// The git commit of the checkout it was built from (`-dirty` with uncommitted changes),
    /// or `unknown`.
    public static let commit = String(cString: coffre_build_commit())

    /// `NAME VERSION (commit COMMIT)`, as `--version` prints it.
    public static func versionLine(_ version: String) -> String {
        "\(version) (commit \(commit))"
    }
}
