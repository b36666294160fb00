#if canImport(Glibc)
import Glibc
#endif

/// Starting child processes with posix_spawn: Foundation's `Process` cannot put a child in a
/// new process group, which a timeout needs to kill a script and all it started.
enum Spawn {
    /// Starts `path` in a process group of its own (its pid is the group id), stdin from
    /// /dev/null, stdout and stderr to `output`, default signal handling.
    static func inNewGroup(_ path: String, arguments: [String], environment: [String: String], output: Int32) -> Result<pid_t, Errno> {
        spawn(path, arguments: arguments, environment: environment, flags: POSIX_SPAWN_SETPGROUP) { actions in
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, output, 1)
            posix_spawn_file_actions_adddup2(&actions, output, 2)
        }
    }

    /// Starts `path` with stdin, stdout and stderr on /dev/null: for the watchdog, which
    /// must not hold the pipe its caller reads the report from.
    static func detached(_ path: String, arguments: [String], environment: [String: String]) -> Result<pid_t, Errno> {
        spawn(path, arguments: arguments, environment: environment, flags: 0) { actions in
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        }
    }

    /// An errno value as an Error.
    struct Errno: Error { var code: Int32 }

    private static func spawn(
        _ path: String, arguments: [String], environment: [String: String], flags: Int32,
        actions configure: (inout posix_spawn_file_actions_t) -> Void
    ) -> Result<pid_t, Errno> {
        var attributes = posix_spawnattr_t()
        var actions = posix_spawn_file_actions_t()
        posix_spawnattr_init(&attributes)
        posix_spawn_file_actions_init(&actions)
        defer {
            posix_spawnattr_destroy(&attributes)
            posix_spawn_file_actions_destroy(&actions)
        }
        // A child must not inherit signals we ignore or block (a script that cannot be
        // stopped by its own tools would surprise its author).
        var all = sigset_t()
        var none = sigset_t()
        sigfillset(&all)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(flags | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        configure(&actions)

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        return rc == 0 ? .success(pid) : .failure(Errno(code: rc))
    }
}

/// A clock that never jumps: deadlines survive the guest's clock being set.
enum Monotonic {
    /// Seconds since an arbitrary origin (CLOCK_BOOTTIME, which counts suspended time too).
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_BOOTTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Sleeps, resuming after signals.
    static func sleep(_ seconds: Double) {
        guard seconds > 0 else { return }
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}
