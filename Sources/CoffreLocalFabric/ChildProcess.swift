import CoffreCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A command run to its end with both output pipes drained, killed with everything it started
/// when it outlives its time limit or its task is cancelled.
///
/// Started by `ProcessSpawn` in a process group of its own: a timeout kills the child *and*
/// what it started (a script's `sleep` would otherwise keep the pipe open and the caller waiting).
struct ChildProcess {
    /// The program and its arguments; a program without `/` is looked up in `PATH`.
    var arguments: [String]
    /// Added to (or replacing in) this process's environment.
    var environment: [String: String] = [:]
    /// Nil: no limit of its own (the caller may still cancel).
    var timeout: Duration?

    /// How the child ended and what it printed.
    struct Output: Sendable {
        var termination: Termination
        var stdout: [UInt8]
        /// The last `stderrLimit` bytes of stderr.
        var stderr: [UInt8]
        var seconds: Double
    }

    enum Termination: Sendable, Equatable {
        case exited(Int32)
        case signaled(Int32)
    }

    enum Failure: Error {
        /// posix_spawn failed (no such program, not executable): the errno.
        case couldNotStart(Int32)
        /// Killed at the time limit; what it printed until then.
        case timedOut(Output)
    }

    /// More than this on stdout is read and dropped: a report is a few KiB.
    static let stdoutLimit = 16 << 20
    static let stderrLimit = 64 << 10
    /// After the child exits, how long descendants that still hold its pipes are waited for.
    static let drainGrace: Duration = .seconds(1)

    /// Runs the command. Throws `Failure`, or `CancellationError` when the task is cancelled
    /// (the child and its process group are killed first).
    func run() async throws -> Output {
        try Task.checkCancellation()
        let started = ContinuousClock.now
        let (pid, stdoutFD, stderrFD) = try spawn()
        let outcome = try await runOnThread { flag in
            supervise(pid: pid, stdoutFD: stdoutFD, stderrFD: stderrFD, started: started, cancelled: flag)
        }
        switch outcome {
        case .finished(let output): return output
        case .timedOut(let output): throw Failure.timedOut(output)
        case .cancelled: throw CancellationError()
        }
    }

    private enum Outcome: Sendable {
        case finished(Output), timedOut(Output), cancelled
    }

    /// A pipe whose ends are not inherited by other children (pipe2 is not visible from Swift's Glibc).
    private static func makePipe(_ fds: inout [Int32]) -> Bool {
        guard pipe(&fds) == 0 else { return false }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return true
    }

    private func spawn() throws -> (pid_t, Int32, Int32) {
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        guard Self.makePipe(&outPipe) else { throw Failure.couldNotStart(errno) }
        guard Self.makePipe(&errPipe) else {
            let code = errno
            outPipe.forEach { close($0) }
            throw Failure.couldNotStart(code)
        }
        defer {
            close(outPipe[1])
            close(errPipe[1])
        }

        // Its own process group (pgid = its pid): a timeout kills what it started too.
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { $1 }
        let pid: pid_t
        do {
            pid = try ProcessSpawn.spawn(arguments[0], argv: arguments, environment: merged, stdout: .descriptor(outPipe[1]),
                                         stderr: .descriptor(errPipe[1]), newProcessGroup: true, searchPath: true)
        } catch {
            close(outPipe[0])
            close(errPipe[0])
            throw Failure.couldNotStart(error.code)
        }
        return (pid, outPipe[0], errPipe[0])
    }

    /// Reads both pipes until the child is gone, killing its group at the deadline or on cancellation.
    private func supervise(pid: pid_t, stdoutFD: Int32, stderrFD: Int32, started: ContinuousClock.Instant,
                           cancelled: CancellationFlag) -> Outcome {
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        var open: [Int32] = [stdoutFD, stderrFD]
        var status: Int32 = 0
        var exitedAt: ContinuousClock.Instant?
        var killedFor: Outcome?
        let deadline = timeout.map { started + $0 }
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        defer { open.forEach { close($0) } }

        while true {
            if exitedAt == nil {
                let reaped = waitpid(pid, &status, WNOHANG)
                if reaped == pid || (reaped < 0 && errno == ECHILD) { exitedAt = .now }
            }
            if let exitedAt, open.isEmpty || ContinuousClock.now - exitedAt > Self.drainGrace { break }
            if killedFor == nil, exitedAt == nil {
                // Killed while not yet reaped, so the group id cannot belong to anyone else.
                if cancelled.isSet {
                    kill(-pid, SIGKILL)
                    killedFor = .cancelled
                } else if let deadline, ContinuousClock.now >= deadline {
                    kill(-pid, SIGKILL)
                    killedFor = .timedOut(Output(termination: .signaled(SIGKILL), stdout: [], stderr: [], seconds: 0))
                }
            }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), 20)
            guard ready > 0 else { continue }
            for entry in fds where entry.revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    close(entry.fd)
                    open.removeAll { $0 == entry.fd }
                    continue
                }
                if entry.fd == stdoutFD {
                    if stdout.count < Self.stdoutLimit { stdout += buffer[0..<min(n, Self.stdoutLimit - stdout.count)] }
                } else {
                    stderr += buffer[0..<n]
                    if stderr.count > 2 * Self.stderrLimit { stderr.removeFirst(stderr.count - Self.stderrLimit) }
                }
            }
        }
        if stderr.count > Self.stderrLimit { stderr.removeFirst(stderr.count - Self.stderrLimit) }
        let termination: Termination = (status & 0x7F) == 0 ? .exited((status >> 8) & 0xFF) : .signaled(status & 0x7F)
        let output = Output(termination: termination, stdout: stdout, stderr: stderr,
                            seconds: (ContinuousClock.now - started).inSeconds)
        switch killedFor {
        case .cancelled?: return .cancelled
        case .timedOut?: return .timedOut(output)
        default: return .finished(output)
        }
    }
}

extension ChildProcess.Output {
    /// Stderr's last characters, trimmed, for an error message.
    func stderrTail(_ count: Int = 1000) -> String {
        let text = String(decoding: stderr.suffix(count), as: UTF8.self)
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

extension ChildProcess.Termination: CustomStringConvertible {
    var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let signal): "was killed by signal \(signal)"
        }
    }
}
