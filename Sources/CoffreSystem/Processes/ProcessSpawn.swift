#if canImport(Glibc)
import Glibc
#endif

/// The one posix_spawn of Coffre: scripts in the guest, the agent's watchdog, the local
/// fabric's agent, host tools (`qemu-img`, `qemu-nbd`).
///
/// Why not Foundation's `Process`: it cannot put a child in a process group of its own (a
/// timeout must kill a script *and* what it started), and it leaves the child the parent's
/// signal state. Every child here starts with default signal dispositions and nothing
/// blocked: the Swift runtime ignores SIGPIPE and its threads block signals, and a
/// `qemu-nbd` inheriting that mask ignores SIGTERM.
package enum ProcessSpawn {
    /// Where one of the child's standard streams goes.
    package enum Stream: Sendable {
        case null
        /// A descriptor of ours, dup2'd into the child.
        case descriptor(Int32)
        /// A file opened (created, truncated) for writing, mode 600.
        case file(String)
        /// stderr only: wherever stdout went.
        case sameAsStdout
    }

    /// posix_spawn's error number.
    package struct Failure: Error, Sendable {
        package var code: Int32
    }

    /// Starts `executable` (looked up in PATH when `searchPath` and it has no `/`).
    /// - Parameters:
    ///   - argv: the whole argument vector, `argv[0]` included.
    ///   - environment: the child's whole environment; nil for this process's.
    ///   - newProcessGroup: the child leads a group of its own (its pid is the group id).
    package static func spawn(
        _ executable: String, argv: [String], environment: [String: String]? = nil,
        stdin: Stream = .null, stdout: Stream, stderr: Stream, newProcessGroup: Bool = false, searchPath: Bool = false
    ) throws(Failure) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        for (fd, stream) in [(Int32(0), stdin), (1, stdout), (2, stderr)] {
            switch stream {
            case .null: posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
            case .descriptor(let source): posix_spawn_file_actions_adddup2(&actions, source, fd)
            case .file(let path): posix_spawn_file_actions_addopen(&actions, fd, path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            case .sameAsStdout: posix_spawn_file_actions_adddup2(&actions, 1, fd)
            }
        }
        var defaults = sigset_t()
        var unblocked = sigset_t()
        sigfillset(&defaults)
        sigemptyset(&unblocked)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &unblocked)
        var flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK
        if newProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer {
            cArguments.forEach { free($0) }
            cEnvironment?.forEach { free($0) }
        }
        let call = searchPath ? posix_spawnp : posix_spawn
        var pid: pid_t = 0
        var rc: Int32 = 0
        // ETXTBSY: the program is open for writing somewhere, often only in a child another
        // thread is forking, between its fork and its exec (close-on-exec closes it there). It
        // passes within milliseconds; a program really being written keeps failing.
        for attempt in 0..<5 {
            rc = cEnvironment.map { call(&pid, executable, &actions, &attributes, cArguments, $0) }
                ?? call(&pid, executable, &actions, &attributes, cArguments, environ)
            guard rc == ETXTBSY else { break }
            usleep(UInt32(10_000 << attempt))
        }
        guard rc == 0 else { throw Failure(code: rc) }
        return pid
    }

    /// A wait status as a shell says it: the exit status, else 128 + the signal.
    package static func exitCode(_ status: Int32) -> Int32 {
        ChildProcess.Termination(waitStatus: status).exitCode
    }
}
