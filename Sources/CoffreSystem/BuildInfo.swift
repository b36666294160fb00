/// What this binary was built from.
public enum BuildInfo {
    /// The git commit of the checkout it was built from (`-dirty` with uncommitted changes),
    /// or `unknown`; written before every build by the BuildCommit plugin.
    public static let commit = buildCommit

    /// `NAME VERSION (commit COMMIT)`, as `--version` prints it.
    public static func versionLine(_ version: String) -> String {
        "\(version) (commit \(commit))"
    }
}
