import CoffreCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A command run to its end with its output pipes drained, killed with everything it started
/// when it outlives its time limit or is cancelled: the one supervision loop of Coffre (the
/// local fabric's coffre-agent, the agent's pre/post scripts).
///
/// Started by `ProcessSpawn` in a process group of its own: a timeout kills the child *and*
/// what it started (a script's `sleep` would otherwise keep the pipe open and the caller waiting).
package struct ChildProcess: Sendable {
    /// The program and its arguments.
    package var arguments: [String]
    /// Added to (or replacing in) this process's environment.
    package var environment: [String: String] = [:]
    /// Nil: no limit of its own (the caller may still cancel).
    package var timeout: Duration?
    /// Where stdout and stderr go and how much of them is kept.
    package var output: OutputCapture = .separate(stdout: .head(16 << 20), stderr: .tail(64 << 10))
    /// A program without `/` is looked up in `PATH`.
    package var searchPath = true
    /// After the child exits, how long descendants that still hold its pipes are read from.
    /// Zero: only what is already in the pipes is read.
    package var drainGrace: Duration = .seconds(1)

    package init(arguments: [String], environment: [String: String] = [:], timeout: Duration? = nil) {
        self.arguments = arguments
        self.environment = environment
        self.timeout = timeout
    }

    /// How much of a stream is kept.
    package enum Capture: Sendable, Equatable {
        /// The first bytes (a report); more is read and dropped.
        case head(Int)
        /// The last bytes (a log's end).
        case tail(Int)
    }

    package enum OutputCapture: Sendable, Equatable {
        /// stdout and stderr apart.
        case separate(stdout: Capture, stderr: Capture)
        /// stderr into stdout's pipe, kept as one stream in `Output.stdout`, in the order written.
        case merged(Capture)
    }

    /// How the child ended and what it printed.
    package struct Output: Sendable {
        package var termination: Termination
        package var stdout: [UInt8]
        /// Empty with `.merged` capture.
        package var stderr: [UInt8]
        package var seconds: Double
    }

    package enum Termination: Sendable, Equatable {
        case exited(Int32)
        case signaled(Int32)

        /// A status `waitpid` gave.
        package init(waitStatus status: Int32) {
            self = (status & 0x7F) == 0 ? .exited((status >> 8) & 0xFF) : .signaled(status & 0x7F)
        }

        /// As a shell says it: the exit status, else 128 + the signal.
        package var exitCode: Int32 {
            switch self {
            case .exited(let code): code
            case .signaled(let signal): 128 + signal
            }
        }
    }

    package enum Failure: Error, Sendable {
        /// posix_spawn (or a pipe) failed: the errno (no such program, not executable, …).
        case couldNotStart(Int32)
        /// Killed at the time limit; what it printed until then.
        case timedOut(Output)
        /// Killed because the caller cancelled it.
        case cancelled
    }

    /// Runs the command on a thread of its own. Throws `Failure`, or `CancellationError` when
    /// the task is cancelled (the child and its process group are killed first).
    package func run() async throws -> Output {
        try Task.checkCancellation()
        let result = await runOnThread { flag in Result { () throws(Failure) in try self.runBlocking(cancelled: flag) } }
        switch result {
        case .success(let output): return output
        case .failure(.cancelled): throw CancellationError()
        case .failure(let failure): throw failure
        }
    }

    /// Runs the command on the calling thread. **Blocks** until the child and the output are
    /// dealt with; `cancelled` (polled every few milliseconds) kills it.
    package func runBlocking(cancelled: CancellationFlag? = nil) throws(Failure) -> Output {
        let started = Monotonic.now()
        let pipes = try spawn()
        return try supervise(pipes, started: started, cancelled: cancelled)
    }

    // MARK: Starting

    private struct Pipes {
        var pid: pid_t
        /// Read ends: stdout's, then stderr's when separate.
        var readEnds: [Int32]
    }

    /// A pipe whose ends are not inherited by other children (pipe2 is not visible from
    /// Swift's Glibc), its read end non-blocking.
    private static func makePipe() throws(Failure) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw .couldNotStart(errno) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        return (fds[0], fds[1])
    }

    private func spawn() throws(Failure) -> Pipes {
        let out = try Self.makePipe()
        let err: (read: Int32, write: Int32)?
        if case .separate = output {
            do {
                err = try Self.makePipe()
            } catch {
                close(out.read)
                close(out.write)
                throw error
            }
        } else {
            err = nil
        }
        defer {
            close(out.write)
            if let err { close(err.write) }
        }
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { $1 }
        do {
            // Its own process group (pgid = its pid): a timeout kills what it started too.
            let pid = try ProcessSpawn.spawn(
                arguments[0], argv: arguments, environment: merged, stdout: .descriptor(out.write),
                stderr: err.map { .descriptor($0.write) } ?? .sameAsStdout, newProcessGroup: true, searchPath: searchPath)
            return Pipes(pid: pid, readEnds: [out.read] + (err.map { [$0.read] } ?? []))
        } catch {
            close(out.read)
            if let err { close(err.read) }
            throw .couldNotStart(error.code)
        }
    }

    // MARK: Supervising

    /// Reads the pipes until the child is gone, killing its group at the deadline or on
    /// cancellation, then reaps what of its group was re-parented to us.
    private func supervise(_ pipes: Pipes, started: Double, cancelled: CancellationFlag?) throws(Failure) -> Output {
        let pid = pipes.pid
        let streams = pipes.readEnds.enumerated().map { index, fd in
            Stream(fd: fd, capture: Self.capture(output, stream: index))
        }
        defer { streams.forEach { $0.close() } }
        var status: Int32 = 0
        var exitedAt: Double?
        var killedFor: Failure?
        let deadline = timeout.map { started + $0.inSeconds }
        let grace = drainGrace.inSeconds
        var idle = 0.001

        while true {
            if exitedAt == nil {
                let reaped = waitpid(pid, &status, WNOHANG)
                if reaped == pid || (reaped < 0 && errno == ECHILD) { exitedAt = Monotonic.now() }
            }
            let open = streams.filter(\.isOpen)
            if let exitedAt, open.isEmpty || Monotonic.now() - exitedAt >= grace { break }
            if killedFor == nil, exitedAt == nil {
                // Killed while not yet reaped, so the group id cannot belong to anyone else.
                if cancelled?.isSet == true {
                    kill(-pid, SIGKILL)
                    killedFor = .cancelled
                } else if let deadline, Monotonic.now() >= deadline {
                    kill(-pid, SIGKILL)
                    killedFor = .timedOut(Output(termination: .signaled(SIGKILL), stdout: [], stderr: [], seconds: 0))
                }
            }
            guard !open.isEmpty else {
                // The pipes are closed and the exit is usually a moment away: poll fast, then slower.
                Monotonic.sleep(idle)
                idle = min(idle * 2, 0.02)
                continue
            }
            var fds = open.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            guard poll(&fds, nfds_t(fds.count), 20) > 0 else { continue }
            for entry in fds where entry.revents != 0 {
                streams.first { $0.fd == entry.fd }?.readAvailable()
            }
        }
        // What was written before the end; descendants still holding a pipe are not waited for.
        for stream in streams where stream.isOpen { stream.readAvailable() }
        // Members of the group that were re-parented to us (when we are a subreaper).
        var orphan: Int32 = 0
        while waitpid(-pid, &orphan, WNOHANG) > 0 {}

        let result = Output(termination: Termination(waitStatus: status), stdout: streams[0].kept,
                            stderr: streams.count > 1 ? streams[1].kept : [], seconds: Monotonic.now() - started)
        switch killedFor {
        case .cancelled?: throw .cancelled
        case .timedOut?: throw .timedOut(result)
        default: return result
        }
    }

    private static func capture(_ output: OutputCapture, stream: Int) -> Capture {
        switch output {
        case .separate(let stdout, let stderr): stream == 0 ? stdout : stderr
        case .merged(let both): both
        }
    }

    /// One pipe being read, and what of it is kept.
    private final class Stream {
        let fd: Int32
        let capture: Capture
        private(set) var isOpen = true
        private var bytes: [UInt8] = []
        private var buffer = [UInt8](repeating: 0, count: 64 << 10)

        init(fd: Int32, capture: Capture) {
            self.fd = fd
            self.capture = capture
        }

        /// Reads until the pipe is empty (or closed: end of stream).
        func readAvailable() {
            while isOpen {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN { return }
                }
                if n <= 0 {
                    close()
                    return
                }
                keep(buffer[0..<n])
            }
        }

        private func keep(_ chunk: ArraySlice<UInt8>) {
            switch capture {
            case .head(let limit):
                if bytes.count < limit { bytes += chunk.prefix(limit - bytes.count) }
            case .tail(let limit):
                bytes += chunk
                if bytes.count > 2 * limit { bytes.removeFirst(bytes.count - limit) }
            }
        }

        var kept: [UInt8] {
            if case .tail(let limit) = capture, bytes.count > limit { return Array(bytes.suffix(limit)) }
            return bytes
        }

        func close() {
            if isOpen {
                _ = Glibc.close(fd)
                isOpen = false
            }
        }
    }
}

extension ChildProcess.Output {
    /// Stderr's last characters, trimmed, for an error message.
    package func stderrTail(_ count: Int = 1000) -> String {
        Self.text(stderr, last: count).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The last `count` bytes as text; a character cut at the start is dropped, not mangled.
    package static func text(_ bytes: [UInt8], last count: Int) -> String {
        var kept = bytes.suffix(count)
        while let first = kept.first, first & 0xC0 == 0x80 { kept = kept.dropFirst() }
        return String(decoding: kept, as: UTF8.self)
    }
}

extension ChildProcess.Termination: CustomStringConvertible {
    package var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let signal): "was killed by signal \(signal)"
        }
    }
}
