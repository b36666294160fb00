import CoffreCore
import Foundation

/// Runs a host program (`qemu-img`, `qemu-nbd --fork`) to its end and returns what it wrote to
/// stdout and stderr. Started by `ProcessSpawn` (clean signal state), its output in a file,
/// reaped with `waitpid` (Foundation's `Process` left a forking parent unreaped). **Blocks.**
package enum HostCommand {
    package static func run(_ executable: String, _ arguments: [String], log: String, missing: CoffreError) throws -> (status: Int32, output: String) {
        guard FileIO.isExecutable(executable) else { throw missing }
        // stdout and stderr into a file: a forked server keeps them open, a pipe would never end.
        let pid: Int32
        do {
            pid = try ProcessSpawn.spawn(executable, argv: [executable] + arguments, stdout: .file(log), stderr: .sameAsStdout)
        } catch {
            throw CoffreError(.ioError, "Cannot start \(executable): \(errnoDescription(error.code))",
                              cause: SystemCallError(errno: error.code))
        }
        let status = Processes.wait(pid)
        let output = String(decoding: (try? FileIO.readFile(log)) ?? [], as: UTF8.self)
        FileIO.unlink(log)
        return (status, output.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
