import CoffreCore
@testable import CoffreExtension
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Every seed 001 error (S3), triggered through the real agent with real files and modes.
/// Scripts leave a marker file when they run, so "not run" is checked, not assumed.
@Suite("Seed 001's error codes (S3)")
struct ErrorCodeTests {
    /// prepare then release with --no-freeze; returns both reports.
    func cycle(_ root: GuestRoot, job: String = "job-1", disks: Int = 2) throws -> (AgentReport, AgentReport) {
        let prepared = try root.report(["prepare", "--job", job, "--disks", String(disks), "--no-freeze"])
        let released = try root.report(["release", "--job", job])
        return (prepared, released)
    }

    func ran(_ root: GuestRoot, _ marker: String) -> Bool { FileManager.default.fileExists(atPath: root.host(marker)) }

    /// Seed 001's table in English, written out here rather than taken from the code, so a
    /// changed catalogue text fails: code → (message opening, recommended action opening).
    static let seed001: [String: (message: String, workaround: String)] = [
        "PreScriptExecutionFailed": (
            "The pre-script returned an error, so the backup may not be application-consistent",
            "Look at your script's error logs to fix the problem"),
        "PostScriptExecutionFailed": (
            "The post-script returned an error that may affect the state of the application",
            "Look at your script's error logs to fix the problem and check the state of the application"),
        "PreScriptNotFound": (
            "The pre-script was not found at the location given in the VMSnapshotScriptPluginConfig.json configuration file",
            "Make sure the pre-script is present at the path given in the configuration file, so that the backup is application-consistent"),
        "PostScriptNotFound": (
            "The post-script was not found at the location given in the VMSnapshotScriptPluginConfig.json configuration file",
            "Make sure the post-script is present at the path given in the configuration file, so that the backup is application-consistent"),
        "IncorrectPluginhostFile": (
            "The Pluginhost file shipped with the extension",
            "Uninstall the extension; it is reinstalled automatically with the next backup, which fixes the problem"),
        "IncorrectJSONConfigFile": (
            "The VMSnapshotScriptPluginConfig.json file is incorrect, so the pre-script and post-script cannot run and the backup will not be application-consistent",
            "Download a fresh copy from GitHub"),
        "InsufficientPermissionforPre-Script": (
            #"To run scripts, the root user must own the file and the file must have "700" permissions, that is, only the owner may have "read", "write" and "execute" permissions"#,
            #"Make sure the "root" user is the "owner" of the script file and that only the owner has "read", "write" and "execute" permissions"#),
        "InsufficientPermissionforPost-Script": (
            #"To run scripts, the root user must own the file and the file must have "700" permissions, that is, only the owner may have "read", "write" and "execute" permissions"#,
            #"Make sure the "root" user is the "owner" of the script file and that only the owner has "read", "write" and "execute" permissions"#),
        "PreScriptTimeout": (
            "Running the application-consistent backup pre-script timed out",
            "Check the script and raise the timeout in the VMSnapshotScriptPluginConfig.json file located in "),
        "PostScriptTimeout": (
            "Running the application-consistent backup post-script timed out",
            "Check the script and raise the timeout in the VMSnapshotScriptPluginConfig.json file located in "),
    ]

    /// The error is there with its code; its message and recommended action open with the
    /// seed's (written out above), and equal the catalogue's (the message then adds details).
    func expectSeedText(_ info: ErrorInfo?, _ catalogue: CoffreError, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let info else {
            Issue.record("error \(catalogue.code) missing", sourceLocation: sourceLocation)
            return
        }
        #expect(info.code == catalogue.code, sourceLocation: sourceLocation)
        guard let seed = Self.seed001[info.code.rawValue] else {
            Issue.record("\(info.code) is not in seed 001's table", sourceLocation: sourceLocation)
            return
        }
        #expect(info.message.hasPrefix(seed.message), sourceLocation: sourceLocation)
        #expect(info.workaround?.hasPrefix(seed.workaround) == true, sourceLocation: sourceLocation)
        #expect(info.message.hasPrefix(catalogue.message), sourceLocation: sourceLocation)
        #expect(info.workaround == catalogue.workaround, sourceLocation: sourceLocation)
    }

    @Test("The table covers the ten codes of issue 4, spelt as the issue spells them")
    func tableComplete() {
        #expect(Set(Self.seed001.keys) == [
            "PreScriptExecutionFailed", "PostScriptExecutionFailed", "PreScriptNotFound", "PostScriptNotFound",
            "IncorrectPluginhostFile", "IncorrectJSONConfigFile", "InsufficientPermissionforPre-Script",
            "InsufficientPermissionforPost-Script", "PreScriptTimeout", "PostScriptTimeout",
        ])
    }

    @Test("PreScriptExecutionFailed: the pre-script exits non-zero")
    func preScriptExecutionFailed() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.script("/opt/pre.sh", "echo failing; exit 3")
        try root.config(["preScriptLocation": "/opt/pre.sh"])
        let (prepared, released) = try cycle(root)
        expectSeedText(prepared.error(.preScriptExecutionFailed), .scriptExecutionFailed(.pre, detail: nil))
        #expect(prepared.ok, "continueBackupOnFailure defaults to true")
        #expect(prepared.scripts.first?.attempts.map(\.exitCode) == [3])
        #expect(prepared.scripts.first?.attempts.first?.outputTail == "failing\n")
        #expect(prepared.consistency == .crashConsistent)
        #expect(released.errors.isEmpty)
    }

    @Test("PostScriptExecutionFailed: the post-script exits non-zero")
    func postScriptExecutionFailed() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.script("/opt/post.sh", "exit 4")
        try root.config(["postScriptLocation": "/opt/post.sh", "postScriptNoOfRetries": 1, "ScriptsExecutionPollTimeSeconds": 1])
        let (prepared, released) = try cycle(root)
        #expect(prepared.errors.isEmpty)
        expectSeedText(released.error(.postScriptExecutionFailed), .scriptExecutionFailed(.post, detail: nil))
        #expect(released.scripts.first?.attempts.map(\.exitCode) == [4, 4])
        #expect(released.ok)
    }

    @Test("PreScriptNotFound: nothing at preScriptLocation")
    func preScriptNotFound() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.config(["preScriptLocation": "/opt/missing.sh"])
        let (prepared, _) = try cycle(root)
        expectSeedText(prepared.error(.preScriptNotFound), .scriptNotFound(.pre, detail: nil))
        #expect(prepared.error(.preScriptNotFound)?.message.contains("/opt/missing.sh") == true)
        #expect(prepared.scripts.first?.attempts.isEmpty == true)
    }

    @Test("PostScriptNotFound: a folder at postScriptLocation")
    func postScriptNotFound() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try FileManager.default.createDirectory(atPath: root.host("/opt/post.d"), withIntermediateDirectories: true)
        try root.config(["postScriptLocation": "/opt/post.d"])
        let (_, released) = try cycle(root)
        expectSeedText(released.error(.postScriptNotFound), .scriptNotFound(.post, detail: nil))
    }

    @Test("IncorrectPluginhostFile: a damaged VMSnapshotPluginHost.conf; no script runs")
    func incorrectPluginhostFile() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.scripts(pre: "touch \"\(root.host("/pre-ran"))\"", post: "touch \"\(root.host("/post-ran"))\"")
        try root.write("/etc/coffre/VMSnapshotPluginHost.conf", "\u{0}\u{1}garbage, not an ini file\n", mode: 0o600)
        let (prepared, released) = try cycle(root)
        expectSeedText(prepared.error(.incorrectPluginhostFile), .incorrectPluginhostFile(detail: nil))
        #expect(!ran(root, "/pre-ran") && !ran(root, "/post-ran"))
        #expect(prepared.ok && released.ok)
    }

    @Test("IncorrectJSONConfigFile: invalid JSON, a wrong type, a missing location key", arguments: [
        #"{"preScriptLocation": "/opt/pre.sh", "postScriptLocation": "/opt/post.sh""#,
        #"{"preScriptLocation": "/opt/pre.sh", "postScriptLocation": "/opt/post.sh", "timeoutInSeconds": "30"}"#,
        #"{"preScriptLocation": "/opt/pre.sh"}"#,
    ])
    func incorrectJSONConfigFile(text: String) throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.script("/opt/pre.sh", "touch \"\(root.host("/pre-ran"))\"")
        try root.write("/etc/coffre/VMSnapshotScriptPluginConfig.json", text, mode: 0o600)
        let (prepared, _) = try cycle(root)
        expectSeedText(prepared.error(.incorrectJSONConfigFile), .incorrectJSONConfigFile(detail: nil))
        #expect(!ran(root, "/pre-ran"))
        #expect(prepared.ok)
    }

    @Test("InsufficientPermissionforPre-Script: group/other bits or another owner; the script is not run", arguments: [
        (mode_t(0o755), uid_t(0)), (0o770, 0), (0o701, 0), (0o700, 1000),
    ])
    func insufficientPermissionPre(mode: mode_t, uid: uid_t) throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.script("/opt/pre.sh", "touch \"\(root.host("/pre-ran"))\"", mode: mode, uid: uid)
        try root.config(["preScriptLocation": "/opt/pre.sh"])
        let (prepared, _) = try cycle(root)
        expectSeedText(prepared.error(.insufficientPermissionForPreScript), .insufficientPermission(.pre, detail: nil))
        #expect(prepared.error(.insufficientPermissionForPreScript)?.message.contains("mode \(String(mode, radix: 8))") == true)
        #expect(!ran(root, "/pre-ran"))
    }

    @Test("InsufficientPermissionforPost-Script: a post-script others can write is not run")
    func insufficientPermissionPost() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.script("/opt/post.sh", "touch \"\(root.host("/post-ran"))\"", mode: 0o722)
        try root.config(["postScriptLocation": "/opt/post.sh"])
        let (_, released) = try cycle(root)
        expectSeedText(released.error(.insufficientPermissionForPostScript), .insufficientPermission(.post, detail: nil))
        #expect(!ran(root, "/post-ran"))
    }

    @Test("A config file others can read is not trusted: scripts are not run (S2)")
    func insecureConfig() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.script("/opt/pre.sh", "touch \"\(root.host("/pre-ran"))\"")
        try root.config(["preScriptLocation": "/opt/pre.sh"], mode: 0o644)
        let (prepared, _) = try cycle(root)
        let error = prepared.error(.insufficientPermissionForPreScript)
        expectSeedText(error, .insufficientPermission(.pre, detail: nil))
        #expect(error?.message.contains("VMSnapshotScriptPluginConfig.json") == true)
        #expect(!ran(root, "/pre-ran"))
    }

    @Test("PreScriptTimeout: the pre-script outlives timeoutInSeconds and is killed")
    func preScriptTimeout() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        // It starts a sleeping child of its own: the timeout must take that down too.
        let childFile = root.host("/child.pid")
        try root.script("/opt/pre.sh", "sleep 300 &\necho $! > \"\(childFile)\"\nsleep 300")
        try root.config(["preScriptLocation": "/opt/pre.sh", "timeoutInSeconds": 1], folder: "/etc/azure")
        let run = try root.run(["prepare", "--job", "job-1", "--no-freeze"])
        let prepared = try run.report()
        expectSeedText(prepared.error(.preScriptTimeout), .scriptTimeout(.pre, configDirectory: "/etc/azure", detail: nil))
        #expect(prepared.error(.preScriptTimeout)?.workaround?.hasSuffix("located in /etc/azure") == true)
        #expect(prepared.scripts.first?.attempts.first?.timedOut == true)
        #expect(prepared.scripts.first?.attempts.first?.exitCode == nil)
        #expect(run.seconds < 10)
        let child = try #require(pid_t(try String(contentsOfFile: childFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(child, SIGKILL) }
        #expect(Processes.wait(upTo: 3) { !Processes.isAlive(child) }, "the pre-script's child \(child) was left running")
        _ = try root.report(["release", "--job", "job-1"])
    }

    @Test("Azure's published template, copied unchanged into /etc/azure, is accepted: no scripts, no error")
    func azureTemplateThroughAgent() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.write("/etc/azure/VMSnapshotScriptPluginConfig.json", ScriptPluginConfigTests.azureTemplate, mode: 0o600)
        let (prepared, released) = try cycle(root)
        #expect(prepared.ok && prepared.errors.isEmpty && prepared.scripts.isEmpty, "\(prepared)")
        #expect(released.ok && released.errors.isEmpty && released.scripts.isEmpty, "\(released)")
    }

    @Test("PostScriptTimeout: the post-script outlives timeoutInSeconds and is killed")
    func postScriptTimeout() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.script("/opt/post.sh", "sleep 60")
        try root.config(["postScriptLocation": "/opt/post.sh", "timeoutInSeconds": 1])
        let (_, released) = try cycle(root)
        expectSeedText(released.error(.postScriptTimeout), .scriptTimeout(.post, configDirectory: "/etc/coffre", detail: nil))
        #expect(released.error(.postScriptTimeout)?.workaround?.hasSuffix("located in /etc/coffre") == true)
        #expect(released.scripts.first?.attempts.first?.timedOut == true)
    }
}
