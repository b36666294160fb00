#if canImport(Glibc)
import Glibc
#endif
public import CoffreCore
import Foundation

/// Runs one script with retries and a timeout (S5, C2).
///
/// Every attempt really starts the script again (the original extension re-read the first
/// attempt's exit code). Each attempt runs in its own process group, so a timeout kills the
/// script and everything it started. One timeout covers all attempts together.
public struct ScriptRunner: Sendable {
    /// How much output is kept per attempt.
    public static let tailBytes = 4096

    /// The script on disk (a host path).
    public var executable: String
    /// The path shown in reports (the guest path from the configuration).
    public var displayPath: String
    /// Arguments after the script's path.
    public var arguments: [String]
    /// Attempts after the first failed one.
    public var retries: Int
    /// Seconds for all attempts together.
    public var timeout: Double
    /// Seconds to wait before a retry.
    public var retryPause: Double
    /// Variables added to the agent's environment.
    public var environment: [String: String]

    /// Describes one script's execution.
    public init(
        executable: String, displayPath: String? = nil, arguments: [String] = [], retries: Int = 0,
        timeout: Double, retryPause: Double = 0, environment: [String: String] = [:]
    ) {
        self.executable = executable
        self.displayPath = displayPath ?? executable
        self.arguments = arguments
        self.retries = retries
        self.timeout = timeout
        self.retryPause = retryPause
        self.environment = environment
    }

    /// What running the script gave.
    public struct Outcome: Sendable, Equatable {
        /// Every attempt, in order.
        public var attempts: [ScriptRun.Attempt]
        /// Whether the last attempt succeeded.
        public var succeeded: Bool { attempts.last?.exitCode == 0 && attempts.last?.timedOut == false }
        /// Whether the timeout ended the run.
        public var timedOut: Bool { attempts.last?.timedOut == true }

        /// The run as a report shows it.
        public func run(_ phase: ScriptRun.Phase, path: String) -> ScriptRun {
            ScriptRun(phase: phase, path: path, succeeded: succeeded, attempts: attempts)
        }
    }

    /// Runs the script until one attempt exits 0, the retries are used up, or the time is.
    /// Blocks the calling thread.
    public func run() -> Outcome {
        let start = Monotonic.now()
        let deadline = start + timeout
        var attempts: [ScriptRun.Attempt] = []
        for attempt in 0...max(retries, 0) {
            if attempt > 0 {
                let pause = min(retryPause, deadline - Monotonic.now())
                if pause > 0 { Monotonic.sleep(pause) }
                // No time left for another try: the failure stands as it is.
                if Monotonic.now() >= deadline { break }
            }
            let result = runOnce(attempt: attempt + 1, deadline: deadline)
            attempts.append(result)
            if result.timedOut || result.exitCode == 0 { break }
        }
        return Outcome(attempts: attempts)
    }

    private func runOnce(attempt: Int, deadline: Double) -> ScriptRun.Attempt {
        let started = Monotonic.now()
        var pipeEnds: [Int32] = [-1, -1]
        guard pipe(&pipeEnds) == 0 else {
            return failedToStart("cannot create a pipe: \(errnoDescription(errno))", started)
        }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        // Our ends must not leak into this or any other child: only the dup2'd copies may.
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        defer { close(readEnd) }

        var env = ProcessInfo.processInfo.environment
        env["COFFRE_SCRIPT_ATTEMPT"] = String(attempt)
        for (key, value) in environment { env[key] = value }
        // A group of its own: a timeout kills the script and everything it started.
        let spawned = Result { () throws(ProcessSpawn.Failure) in
            try ProcessSpawn.spawn(executable, argv: [executable] + arguments, environment: env,
                                   stdout: .descriptor(writeEnd), stderr: .descriptor(writeEnd), newProcessGroup: true)
        }
        close(writeEnd)
        let pid: pid_t
        switch spawned {
        case .failure(let error):
            return failedToStart("cannot start \(displayPath): \(errnoDescription(error.code))", started)
        case .success(let child):
            pid = child
        }

        var tail = OutputTail(limit: Self.tailBytes)
        var status: Int32 = 0
        var timedOut = false
        var open = true
        // Once the pipe is closed the exit is usually a moment away: poll fast, then slower.
        var exitPoll = 0.001
        while true {
            if waitpid(pid, &status, WNOHANG) == pid {
                break
            }
            let remaining = deadline - Monotonic.now()
            if remaining <= 0 {
                timedOut = true
                break
            }
            if open {
                // The pipe wakes us for output; the 50 ms cap notices an exit whose
                // descendants still hold the pipe open.
                var entry = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
                let wait = Int32(min(remaining, 0.05) * 1000) + 1
                if poll(&entry, 1, wait) > 0 && !tail.read(from: readEnd) { open = false }
            } else {
                Monotonic.sleep(min(remaining, exitPoll))
                exitPoll = min(exitPoll * 2, 0.05)
            }
        }
        if timedOut {
            // The whole group: the script and whatever it started and left running.
            _ = kill(-pid, SIGKILL)
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        // What was written before the exit; children still holding the pipe are not waited for.
        _ = fcntl(readEnd, F_SETFL, O_NONBLOCK)
        while open && tail.read(from: readEnd) {}
        reapOrphans(group: pid)

        let seconds = ((Monotonic.now() - started) * 1000).rounded() / 1000
        if timedOut {
            return ScriptRun.Attempt(exitCode: nil, timedOut: true, seconds: seconds, outputTail: tail.text)
        }
        return ScriptRun.Attempt(exitCode: ProcessSpawn.exitCode(status), timedOut: false, seconds: seconds, outputTail: tail.text)
    }

    /// Members of the script's group that were re-parented to us (when we are a subreaper).
    private func reapOrphans(group: pid_t) {
        var status: Int32 = 0
        while waitpid(-group, &status, WNOHANG) > 0 {}
    }

    private func failedToStart(_ message: String, _ started: Double) -> ScriptRun.Attempt {
        // 127 is what a shell answers for a command it cannot run.
        ScriptRun.Attempt(exitCode: 127, timedOut: false, seconds: Monotonic.now() - started, outputTail: message)
    }
}

/// The last bytes of a stream.
struct OutputTail {
    let limit: Int
    private var bytes: [UInt8] = []

    init(limit: Int) { self.limit = limit }

    /// Reads what is available; false at end of stream or on error (other than EAGAIN/EINTR).
    mutating func read(from fd: Int32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16384)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n < 0 { return errno == EINTR }
        if n == 0 { return false }
        append(buffer[0..<n])
        return true
    }

    mutating func append(_ chunk: ArraySlice<UInt8>) {
        bytes.append(contentsOf: chunk)
        if bytes.count > limit * 2 { bytes.removeFirst(bytes.count - limit) }
    }

    /// The kept bytes as text; a character cut at the start is dropped, not mangled.
    var text: String {
        var kept = bytes.suffix(limit)
        while let first = kept.first, first & 0xC0 == 0x80 { kept = kept.dropFirst() }
        return String(decoding: kept, as: UTF8.self)
    }
}
