import Foundation
import PackagePlugin

/// Writes `BuildCommit.swift` — the commit of the checkout being built, `-dirty` with
/// uncommitted changes, `unknown` outside a git checkout — before every build, so that
/// `--version` never names a stale commit (the manifest is evaluated once and cached, so it
/// cannot tell). The file is rewritten only when the commit changes: nothing recompiles otherwise.
@main
struct BuildCommit: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) async throws -> [Command] {
        let folder = context.pluginWorkDirectoryURL.appending(path: "generated")
        let script = #"""
            mkdir -p "$2"
            commit=$(git -C "$1" rev-parse HEAD 2>/dev/null) || commit=unknown
            if [ "$commit" != unknown ] && [ -n "$(git -C "$1" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
              commit="$commit-dirty"
            fi
            line="let buildCommit = \"$commit\""
            [ "$(cat "$2/BuildCommit.swift" 2>/dev/null)" = "$line" ] || printf '%s\n' "$line" > "$2/BuildCommit.swift"
            """#
        return [.prebuildCommand(
            displayName: "Recording the build's commit",
            executable: URL(fileURLWithPath: "/bin/sh"),
            arguments: ["-c", script, "build-commit", context.package.directoryURL.path, folder.path],
            outputFilesDirectory: folder)]
    }
}
