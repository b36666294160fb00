import CoffreCore
@testable import CoffreExtension
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The commands and their JSON (docs/agent-protocol.md), without freezing anything.
@Suite("coffre-agent commands and protocol")
struct AgentProtocolTests {
    @Test("version: one JSON document, protocol 1, exit 0; with or without --root", arguments: [true, false])
    func version(passRoot: Bool) throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        let run = try root.run(["version"], passRoot: passRoot)
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.split(separator: "\n").count == 1)
        let report = try run.report()
        #expect(report.command == "version" && report.protocolVersion == 1 && report.agentVersion == Agent.version && report.ok)
        #expect(report.errors.isEmpty && !report.frozen && report.job == nil)
        #expect(try root.state() == nil, "version writes nothing")
    }

    @Test("Every command takes --root, and COFFRE_AGENT_ROOT when --root is absent")
    func rootOption() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        // The local fabric's exact command lines.
        #expect(try root.report(["version"]).ok)
        let empty = try root.report(["status"])
        #expect(empty.ok && empty.job == nil && !empty.frozen)
        #expect(try root.report(["prepare", "--job", "j-1", "--disks", "2", "--no-freeze"]).ok)
        #expect(try root.state()?["job"] as? String == "j-1", "the state went under --root")
        #expect(try root.report(["status"]).job == "j-1")
        #expect(try root.report(["release", "--job", "j-1"]).ok)
        // The same guest through the environment instead.
        let viaEnvironment = try root.report(["status"], environment: ["COFFRE_AGENT_ROOT": root.path], passRoot: false)
        #expect(viaEnvironment.job == "j-1" && viaEnvironment.consistency == .crashConsistent)
        #expect(FileManager.default.fileExists(atPath: root.host("/var/log/coffre/agent.log")))
    }

    @Test("prepare then release: both scripts run once each, with the job in their environment")
    func cycle() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        let log = root.host("/scripts.log")
        try root.scripts(pre: "echo \"pre $COFFRE_JOB $*\" >> \"\(log)\"", post: "echo \"post $COFFRE_JOB $*\" >> \"\(log)\"",
                         config: ["preScriptParams": ["", "--quiesce", ""], "postScriptParams": ["--resume"]])
        let prepared = try root.report(["prepare", "--job", "j-1", "--disks", "2", "--no-freeze"])
        #expect(prepared.ok && !prepared.frozen && prepared.frozenFileSystems.isEmpty)
        #expect(prepared.consistency == .crashConsistent, "nothing frozen")
        #expect(prepared.scripts.map(\.phase) == [.pre] && prepared.scripts.first?.succeeded == true)
        let deadline = try #require(prepared.thawDeadline)
        #expect(deadline > Date() && deadline < Date().addingTimeInterval(61))
        let status = try root.report(["status"])
        #expect(status.job == "j-1" && !status.frozen)

        let released = try root.report(["release", "--job", "j-1"])
        #expect(released.ok && released.errors.isEmpty)
        #expect(released.scripts.map(\.phase) == [.post] && released.scripts.first?.succeeded == true)
        #expect(released.freezeDurationMilliseconds == nil, "nothing was frozen")
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "pre j-1 --quiesce\npost j-1 --resume\n")
        // The watchdog was stopped by release.
        let pid = try #require(try root.state()?["watchdogPid"] as? Int)
        #expect(Processes.wait(upTo: 5) { !Processes.isAlive(pid_t(pid)) })
        // A repeated release answers the same and does not run the post-script again.
        let again = try root.report(["release", "--job", "j-1"])
        #expect(again == released)
        #expect(try String(contentsOfFile: log, encoding: .utf8).components(separatedBy: "post").count == 2)
        #expect(FileManager.default.fileExists(atPath: root.host("/var/log/coffre/agent.log")))
    }

    @Test("release of a job never prepared: NotPrepared, ok false, exit 0")
    func releaseUnknownJob() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        let report = try root.report(["release", "--job", "nobody"])
        #expect(!report.ok && report.codes == [.notPrepared])
    }

    @Test("A second prepare before release is refused; the first job still releases")
    func secondPrepareRefused() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        _ = try root.report(["prepare", "--job", "first", "--no-freeze"])
        let second = try root.report(["prepare", "--job", "second", "--no-freeze"])
        #expect(!second.ok && second.codes == [.guestAlreadyPrepared])
        #expect(try root.state()?["job"] as? String == "first")
        #expect(try root.report(["release", "--job", "first"]).ok)
        #expect(try root.report(["prepare", "--job", "second", "--no-freeze"]).ok)
        #expect(try root.report(["release", "--job", "second"]).ok)
    }

    @Test("The lock file keeps two agent commands from working at once: AgentBusy")
    func lockHeld() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try FileManager.default.createDirectory(atPath: root.host("/var/lib/coffre"), withIntermediateDirectories: true)
        let fd = open(root.host("/var/lib/coffre/agent.lock"), O_RDONLY | O_CREAT, 0o600)
        #expect(fd >= 0 && flock(fd, LOCK_EX) == 0)
        let busy = try root.report(["prepare", "--job", "j", "--no-freeze"])
        #expect(!busy.ok && busy.codes == [.agentBusy])
        #expect(try root.state() == nil, "a refused prepare writes nothing")
        close(fd)
        #expect(try root.report(["prepare", "--job", "j", "--no-freeze"]).ok)
        _ = try root.report(["release", "--job", "j"])
    }

    @Test("continueBackupOnFailure=false: a failing pre-script fails a multi-disk backup, not a single-disk one")
    func continueBackupOnFailureFalse() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.scripts(pre: "exit 1", post: "echo resumed >> \"\(root.host("/post-runs"))\"", config: ["continueBackupOnFailure": false])
        let multi = try root.report(["prepare", "--job", "multi", "--disks", "3", "--no-freeze"])
        #expect(!multi.ok && multi.codes == [.preScriptExecutionFailed] && multi.consistency == .crashConsistent)
        // The backup fails and the engine will not release an unfrozen guest: prepare resumed
        // the application itself, stopped no watchdog because it started none, and freed the guest.
        #expect(multi.scripts.map(\.phase) == [.pre, .post])
        #expect(try String(contentsOfFile: root.host("/post-runs"), encoding: .utf8) == "resumed\n")
        #expect(try root.state()?["releasedBy"] as? String == "prepare")
        #expect(try root.state()?["watchdogPid"] == nil)
        // Its release answers with what prepare's own release gave, running nothing again.
        let late = try root.report(["release", "--job", "multi"])
        #expect(late.command == "release" && late.scripts.map(\.phase) == [.post])
        #expect(try String(contentsOfFile: root.host("/post-runs"), encoding: .utf8) == "resumed\n")
        let single = try root.report(["prepare", "--job", "single", "--disks", "1", "--no-freeze"])
        #expect(single.ok && single.consistency == .crashConsistent && single.codes == [.preScriptExecutionFailed])
        #expect(single.scripts.map(\.phase) == [.pre])
        let released = try root.report(["release", "--job", "single"])
        #expect(released.ok && released.consistency == .crashConsistent)
        #expect(try String(contentsOfFile: root.host("/post-runs"), encoding: .utf8) == "resumed\nresumed\n")
    }

    @Test("continueBackupOnFailure=false: a failing post-script fails a multi-disk backup at release")
    func postScriptFailsBackup() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.scripts(pre: nil, post: "exit 5", config: ["continueBackupOnFailure": false])
        #expect(try root.report(["prepare", "--job", "multi", "--disks", "2", "--no-freeze"]).ok)
        let multi = try root.report(["release", "--job", "multi"])
        #expect(!multi.ok && multi.codes == [.postScriptExecutionFailed])
        #expect(try root.report(["prepare", "--job", "single", "--disks", "1", "--no-freeze"]).ok)
        let single = try root.report(["release", "--job", "single"])
        #expect(single.ok && single.codes == [.postScriptExecutionFailed] && single.consistency == .crashConsistent)
    }

    @Test("Retries through the agent: 2 retries make a twice-failing pre-script succeed on its 3rd run")
    func retriesThroughAgent() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        let counter = root.host("/counter")
        try root.countingScript("/opt/pre.sh", counter: counter, succeedsOnRun: 3, failure: 9)
        try root.config(["preScriptLocation": "/opt/pre.sh", "preScriptNoOfRetries": 2, "ScriptsExecutionPollTimeSeconds": 1])
        let prepared = try root.report(["prepare", "--job", "j", "--no-freeze"])
        #expect(prepared.errors.isEmpty)
        #expect(prepared.scripts.first?.succeeded == true)
        #expect(prepared.scripts.first?.attempts.map(\.exitCode) == [9, 9, 0])
        #expect(prepared.scripts.first?.attempts.map(\.outputTail) == ["run 1\n", "run 2\n", "run 3\n"])
        #expect(try String(contentsOfFile: counter, encoding: .utf8) == "3\n")
        _ = try root.report(["release", "--job", "j"])
    }

    @Test("Without release, the watchdog runs the post-script at the deadline")
    func watchdogReleasesScripts() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.script("/opt/post.sh", "touch \"\(root.host("/post-ran"))\"")
        try root.config(["postScriptLocation": "/opt/post.sh"])
        let prepared = try root.report(["prepare", "--job", "j", "--no-freeze", "--thaw-after", "1"])
        #expect(prepared.ok)
        #expect(!FileManager.default.fileExists(atPath: root.host("/post-ran")))
        #expect(Processes.wait(upTo: 10) { FileManager.default.fileExists(atPath: root.host("/post-ran")) })
        #expect(Processes.wait(upTo: 5) { (try? root.state()?["releasedBy"] as? String) == "watchdog" })
        let released = try root.report(["release", "--job", "j"])
        #expect(released.ok && released.scripts.first?.succeeded == true)
        #expect(released.codes.isEmpty, "nothing was frozen, so nothing was thawed early")
    }

    @Test("Bad arguments: a usage error on stderr, exit 64, no report")
    func usage() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        let run = try root.run(["prepare", "--job", "has space"])
        #expect(run.status == 64)
        #expect(run.stdout.isEmpty)
    }
}
