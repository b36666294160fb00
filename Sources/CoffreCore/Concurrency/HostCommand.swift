import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a host program (`qemu-img`, `qemu-nbd --fork`) to its end and returns what it wrote to
/// stderr. posix_spawn rather than Foundation's `Process`: with an empty signal mask and default
/// handlers (threads of a Swift process block signals, and a `qemu-nbd` inheriting that mask
/// ignores SIGTERM), stdout and stderr into a file (a forked server keeps them open, a pipe
/// would never end), and reaped with `waitpid` (Process left a forking parent unreaped).
package enum HostCommand {
    package static func run(_ executable: String, _ arguments: [String], log: String, missing: CoffreError) throws -> (status: Int32, output: String) {
        guard FileManager.default.isExecutableFile(atPath: executable) else { throw missing }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var signals = sigset_t()
        sigemptyset(&signals)
        posix_spawnattr_setsigmask(&attributes, &signals)
        sigfillset(&signals)
        posix_spawnattr_setsigdefault(&attributes, &signals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard spawned == 0 else {
            throw CoffreError("IOError", "Cannot start \(executable): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: log)
        // Exit status when it exited, else 128 + the signal, as a shell says it.
        let code = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return (code, output.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
