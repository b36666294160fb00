import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a host program (`qemu-img`, `qemu-nbd --fork`) to its end and returns what it wrote to
/// stdout and stderr. Started by `ProcessSpawn` (clean signal state), its output in a file,
/// reaped with `waitpid` (Foundation's `Process` left a forking parent unreaped).
package enum HostCommand {
    package static func run(_ executable: String, _ arguments: [String], log: String, missing: CoffreError) throws -> (status: Int32, output: String) {
        guard FileManager.default.isExecutableFile(atPath: executable) else { throw missing }
        // stdout and stderr into a file: a forked server keeps them open, a pipe would never end.
        let pid: pid_t
        do {
            pid = try ProcessSpawn.spawn(executable, argv: [executable] + arguments, stdout: .file(log), stderr: .sameAsStdout)
        } catch {
            throw CoffreError("IOError", "Cannot start \(executable): \(String(cString: strerror(error.code)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: log)
        return (ProcessSpawn.exitCode(status), output.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
