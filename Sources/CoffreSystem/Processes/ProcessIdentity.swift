import Foundation

/// Names a process as the owner of jobs and tells whether it still runs.
public enum ProcessIdentity {
    /// `host:pid:starttime` — the start time guards against a recycled pid.
    public static let current: String = {
        let pid = Processes.currentID
        return "\(hostName):\(pid):\(Processes.startTime(of: pid) ?? "0")"
    }()

    /// Whether the process named by `owner` runs. Owners of another host are assumed alive.
    @Sendable public static func isAlive(_ owner: String) -> Bool {
        let parts = owner.split(separator: ":").map(String.init)
        guard parts.count == 3, let pid = Int32(parts[1]) else { return false }
        guard parts[0] == hostName else { return true }
        return Processes.startTime(of: pid) == parts[2]
    }

    private static let hostName: String = ProcessInfo.processInfo.hostName
}
