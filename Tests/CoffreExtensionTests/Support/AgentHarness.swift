// Runs the real `coffre-agent` binary against a throw-away guest root.

import CoffreCore
import CoffreSystem
import CoffreTesting
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The `coffre-agent` executable under test.
enum AgentBinary {
    /// `COFFRE_AGENT_BIN`, else next to the running test bundle (any scratch path), else
    /// `.build/debug` or `.build-ext/debug` under the package root.
    static func locate(filePath: String = #filePath) throws -> String {
        let fm = FileManager.default
        if let explicit = ProcessInfo.processInfo.environment["COFFRE_AGENT_BIN"], !explicit.isEmpty {
            guard fm.isExecutableFile(atPath: explicit) else { throw HarnessError("COFFRE_AGENT_BIN=\(explicit) is not executable") }
            return explicit
        }
        var candidates: [String] = []
        let exe = (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("coffre-agent").path)
        let bundle = Bundle.main.bundleURL.standardizedFileURL
        candidates.append(bundle.appendingPathComponent("coffre-agent").path)
        candidates.append(bundle.deletingLastPathComponent().appendingPathComponent("coffre-agent").path)
        // Tests/CoffreExtensionTests/Support/AgentHarness.swift: the package root is four levels up.
        var root = URL(fileURLWithPath: filePath)
        for _ in 0..<4 { root.deleteLastPathComponent() }
        for scratch in [".build", ".build-ext"] { candidates.append(root.appendingPathComponent("\(scratch)/debug/coffre-agent").path) }
        guard let found = candidates.first(where: { fm.isExecutableFile(atPath: $0) }) else {
            throw HarnessError("coffre-agent not found (build it, or set COFFRE_AGENT_BIN); looked at \(candidates)")
        }
        return found
    }
}

/// One finished agent command.
struct AgentRun: CustomStringConvertible {
    var arguments: [String]
    var status: Int32
    var stdout: String
    var stderr: String
    var seconds: Double

    /// The one JSON document on stdout.
    func report() throws -> AgentReport {
        do {
            return try AgentReport.makeDecoder().decode(AgentReport.self, from: Data(stdout.utf8))
        } catch {
            throw HarnessError("stdout is not one AgentReport (\(error)): \(self)")
        }
    }

    var description: String { "coffre-agent \(arguments.joined(separator: " ")) -> \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
}

/// A guest root folder for one test, removed (with everything the agent left) at the end.
final class GuestRoot {
    let path: String
    let agent: String

    init() throws {
        agent = try AgentBinary.locate()
        let template = NSTemporaryDirectory() + "coffre-agent-test-XXXXXX"
        var bytes = Array(template.utf8CString)
        guard mkdtemp(&bytes) != nil else { throw HarnessError("mkdtemp failed") }
        path = String(decoding: bytes.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A host path inside the root for a guest path.
    func host(_ guestPath: String) -> String { path + guestPath }

    /// Runs a command with `--root` this folder; waits for it.
    @discardableResult
    func run(_ arguments: [String], environment: [String: String] = [:], passRoot: Bool = true) throws -> AgentRun {
        let process = try start(arguments, environment: environment, passRoot: passRoot)
        let stdout = process.standardOutputData()
        let stderr = process.standardErrorData()
        process.process.waitUntilExit()
        return AgentRun(arguments: arguments, status: process.process.terminationStatus,
                        stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self),
                        seconds: Date().timeIntervalSince(process.started))
    }

    /// Runs a command and decodes its report, checking the exit status is 0.
    func report(_ arguments: [String], environment: [String: String] = [:], passRoot: Bool = true) throws -> AgentReport {
        let run = try run(arguments, environment: environment, passRoot: passRoot)
        guard run.status == 0 else { throw HarnessError("exit \(run.status): \(run)") }
        return try run.report()
    }

    /// Starts a command without waiting.
    /// - Parameter passRoot: append `--root` this folder, as the local fabric does for every command.
    func start(_ arguments: [String], environment: [String: String] = [:], passRoot: Bool = true) throws -> RunningAgent {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: agent)
        process.arguments = passRoot ? arguments + ["--root", path] : arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "COFFRE_AGENT_ROOT")
        env.removeValue(forKey: "COFFRE_AGENT_HOLD_AFTER_FREEZE_SECONDS")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let started = Date()
        try process.run()
        return RunningAgent(process: process, out: out, err: err, started: started)
    }

    /// Writes a file as root with the given mode and owner.
    func write(_ guestPath: String, _ text: String, mode: mode_t, uid: uid_t = 0) throws {
        let file = host(guestPath)
        try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        // O_CLOEXEC (FileIO's every open): a child spawned meanwhile by a test running in
        // parallel must not inherit the script open for writing (running it fails with ETXTBSY).
        try FileIO.writeFileAtomically(file, Array(text.utf8), mode: UInt32(mode))
        guard chmod(file, mode) == 0, chown(file, uid, 0) == 0 else { throw HarnessError("chmod/chown \(file): \(errno)") }
    }

    /// A shell script at a guest path (root's, mode 700 unless said otherwise).
    func script(_ guestPath: String, _ body: String, mode: mode_t = 0o700, uid: uid_t = 0) throws {
        try write(guestPath, "#!/bin/sh\n" + body + "\n", mode: mode, uid: uid)
    }

    /// A script that counts its runs in `counter` and fails with `failure` until run number
    /// `succeedsOnRun`: proof that a retry really runs the script again.
    func countingScript(_ guestPath: String, counter: String, succeedsOnRun: Int, failure: Int32 = 7) throws {
        try script(guestPath, """
            n=$(cat "\(counter)" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "\(counter)"
            echo "run $n"
            [ $n -ge \(succeedsOnRun) ] || exit \(failure)
            """)
    }

    /// `/opt/pre.sh` and `/opt/post.sh` with these bodies (root's, mode 700; nil: none), and a
    /// configuration naming them, plus `fields`.
    func scripts(pre: String?, post: String?, config fields: [String: Any] = [:]) throws {
        var all = fields
        if let pre {
            try script("/opt/pre.sh", pre)
            all["preScriptLocation"] = "/opt/pre.sh"
        }
        if let post {
            try script("/opt/post.sh", post)
            all["postScriptLocation"] = "/opt/post.sh"
        }
        try config(all)
    }

    /// `VMSnapshotScriptPluginConfig.json` in `/etc/coffre` (or another folder).
    func config(_ fields: [String: Any], folder: String = "/etc/coffre", mode: mode_t = 0o600, uid: uid_t = 0) throws {
        var all: [String: Any] = ["pluginName": "ScriptRunner", "preScriptLocation": "", "postScriptLocation": ""]
        for (key, value) in fields { all[key] = value }
        let data = try JSONSerialization.data(withJSONObject: all, options: [.sortedKeys])
        try write(folder + "/VMSnapshotScriptPluginConfig.json", String(decoding: data, as: UTF8.self), mode: mode, uid: uid)
    }

    /// The agent's state file, if any.
    func state() throws -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: host("/var/lib/coffre/state.json")) else { return nil }
        return try JSONSerialization.jsonObject(with: data) as? [String: Any]
    }

    /// The watchdog this root's state names, while it runs.
    var watchdog: pid_t? {
        guard let pid = (try? state())?["watchdogPid"] as? Int, isAgentWatchdog(pid_t(pid)) else { return nil }
        return pid_t(pid)
    }

    /// Kills the watchdog, so that it cannot act after the test.
    func killWatchdog() {
        if let pid = watchdog { kill(pid, SIGKILL) }
    }

    /// Kills the watchdog and removes the folder; safe to call twice. Unmount first.
    func cleanUp() {
        killWatchdog()
        try? FileManager.default.removeItem(atPath: path)
    }

    deinit { cleanUp() }

    private func isAgentWatchdog(_ pid: pid_t) -> Bool {
        guard Processes.isAlive(pid), let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let text = String(decoding: data, as: UTF8.self)
        return text.contains("watchdog") && text.contains(path)
    }
}

/// A started command.
struct RunningAgent {
    let process: Process
    let out: Pipe
    let err: Pipe
    let started: Date

    func standardOutputData() -> Data { out.fileHandleForReading.readDataToEndOfFile() }
    func standardErrorData() -> Data { err.fileHandleForReading.readDataToEndOfFile() }
}

/// Processes: alive means existing and not a zombie (this machine's init may not reap).
enum Processes {
    static func isAlive(_ pid: pid_t) -> Bool {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return false }
        let text = String(decoding: data, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return false }
        let state = text[text.index(after: close)...].split(separator: " ").first
        return state != "Z" && state != "X"
    }

    /// Live processes whose process group is `group`.
    static func members(ofGroup group: pid_t) -> [pid_t] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap { pid_t($0) }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return false }
            let text = String(decoding: data, as: UTF8.self)
            guard let close = text.lastIndex(of: ")") else { return false }
            let fields = text[text.index(after: close)...].split(separator: " ")
            return fields.count > 3 && fields[2] == "\(group)" && fields[0] != "Z"
        }
    }

    /// Waits until `condition` holds or the time is up; returns whether it held.
    static func wait(upTo seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }
}

extension AgentReport {
    /// The codes of its errors.
    var codes: [CoffreError.Code] { errors.map(\.code) }
    /// The error with a code.
    func error(_ code: CoffreError.Code) -> ErrorInfo? { errors.first { $0.code == code } }
}
