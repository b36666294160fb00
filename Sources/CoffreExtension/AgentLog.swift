import CoffreCore
import CoffreSystem
import Foundation

/// The agent's diagnostics, appended to `<root>/var/log/coffre/agent.log`.
///
/// Lines are kept in memory and written by `flush()` at moments the caller knows the guest is
/// not frozen: a write to a frozen file system would block the agent until the thaw.
final class AgentLog {
    private let paths: GuestPaths
    private let prefix: String
    private var pending: [String] = []
    /// Past this size the log is renamed to agent.log.1, so it never fills the guest's disk.
    static let rotateBytes: Int64 = 1 << 20

    init(paths: GuestPaths, command: String, job: String?) {
        self.paths = paths
        self.prefix = "\(command)\(job.map { " job=\($0)" } ?? "") pid=\(Processes.currentID)"
    }

    func note(_ message: String) {
        pending.append("\(Date().formatted(.iso8601)) [\(prefix)] \(message)")
    }

    /// Writes the pending lines. **Never call while the guest is frozen.** Errors are dropped:
    /// the report on stdout is what counts; a full log disk must not fail a backup.
    func flush() {
        guard !pending.isEmpty else { return }
        let text = pending.joined(separator: "\n") + "\n"
        pending.removeAll()
        do {
            try FileIO.makeDirectories(paths.logDirectory, mode: 0o700)
            if let size = FileIO.status(paths.logFile)?.size, size > Self.rotateBytes {
                _ = try FileIO.renameIfPresent(paths.logFile, to: paths.logFile + ".1")
            }
            try FileIO.append(Array(text.utf8), to: paths.logFile)
        } catch {}
    }

    /// Drops the pending lines (a refused command while frozen cannot write them).
    func discard() { pending.removeAll() }
}
