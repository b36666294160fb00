import Foundation
import Testing

/// `--version` names the release and the commit the binaries were built from.
@Suite("CLI version")
struct VersionTests {
    /// The commit of this checkout, `-dirty` when it has uncommitted changes, as the build saw it.
    static func checkoutCommit() throws -> String? {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let git = URL(fileURLWithPath: "/usr/bin/git")
        guard FileManager.default.isExecutableFile(atPath: git.path) else { return nil }
        let head = try runProcess(git, ["-C", repo.path, "rev-parse", "HEAD"])
        guard head.succeeded else { return nil }
        return head.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func coffreAndTheAgentPrintTheirVersionAndCommit() throws {
        let coffre = try Coffre()
        let agent = coffre.binary.deletingLastPathComponent().appendingPathComponent("coffre-agent")
        let pattern = #/^(coffre|coffre-agent) \d+\.\d+\.\d+ \(commit ([0-9a-f]{40}(-dirty)?|unknown)\)$/#
        for (binary, name) in [(coffre.binary, "coffre"), (agent, "coffre-agent")] {
            let result = try runProcess(binary, ["--version"])
            #expect(result.succeeded, "\(result)")
            let line = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let match = try #require(line.wholeMatch(of: pattern), "\(name): \(line)")
            #expect(match.output.1 == name)
            // Built from this checkout: the commit is HEAD's (a tree with changes says -dirty).
            if let head = try Self.checkoutCommit() {
                #expect(line.contains(head), "\(name) says \(line); HEAD is \(head)")
            }
        }
    }
}
