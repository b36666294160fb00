#if canImport(Glibc)
import Glibc
#endif

/// Signals, reaping and sessions: what the agent's watchdog, qemu-nbd's supervision and the
/// job owner checks need beyond `ChildProcess`.
package enum Processes {
    package enum Signal: Sendable {
        case kill, terminate
        var number: Int32 { self == .kill ? SIGKILL : SIGTERM }
    }

    /// This process's id.
    package static var currentID: Int32 { getpid() }

    /// Sends `signal` to a process; false when there is no such process (or it is not ours).
    @discardableResult
    package static func send(_ signal: Signal, to pid: Int32) -> Bool {
        kill(pid, signal.number) == 0
    }

    /// Whether a process with this id exists (a zombie counts until it is reaped).
    package static func exists(_ pid: Int32) -> Bool {
        pid > 0 && kill(pid, 0) == 0
    }

    /// Reaps a child that has exited; nil while it runs. Returns its exit code as a shell
    /// says it (128 + the signal when killed).
    package static func reapIfExited(_ pid: Int32) -> Int32? {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == pid ? ProcessSpawn.exitCode(status) : nil
    }

    /// Waits for a child to exit and reaps it; its exit code as a shell says it.
    @discardableResult
    package static func wait(_ pid: Int32) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        return ProcessSpawn.exitCode(status)
    }

    /// Waits up to `seconds` for a process (not necessarily our child) to be gone.
    /// - Returns: whether it is gone.
    @discardableResult
    package static func waitUntilGone(_ pid: Int32, seconds: Double) -> Bool {
        let deadline = Monotonic.now() + seconds
        while exists(pid) {
            if Monotonic.now() >= deadline { return false }
            Monotonic.sleep(0.01)
        }
        return true
    }

    /// The session id in /proc/PID/stat (the field after the parenthesised name, state, ppid, pgrp).
    package static func sessionID(of pid: Int32) -> Int32? {
        statField(of: pid, index: 3).flatMap { Int32($0) }
    }

    /// Field 22 of /proc/PID/stat: the process's start time in clock ticks since boot; with the
    /// pid it names one process across pid reuse.
    package static func startTime(of pid: Int32) -> String? {
        statField(of: pid, index: 19)
    }

    /// A field of /proc/PID/stat counted from the state (field 3), after the command name,
    /// which may hold spaces and parentheses.
    private static func statField(of pid: Int32, index: Int) -> String? {
        guard let bytes = try? FileIO.readFile("/proc/\(pid)/stat") else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > index ? String(fields[index]) : nil
    }

    /// The arguments a process was started with (/proc/PID/cmdline); nil when it is gone.
    package static func arguments(of pid: Int32) -> [String]? {
        guard let bytes = try? FileIO.readFile("/proc/\(pid)/cmdline") else { return nil }
        return bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Leaves the caller's session and process group (setsid): killing either no longer
    /// reaches this process.
    package static func startNewSession() {
        _ = setsid()
    }

    /// Closes every descriptor above stderr: an inherited pipe or lock would otherwise stay
    /// open for as long as this process lives.
    package static func closeInheritedDescriptors() {
        for name in (try? FileIO.list("/proc/self/fd")) ?? [] {
            if let fd = Int32(name), fd > 2 { Glibc.close(fd) }
        }
    }
}
