import CoffreSystem
/// Where the agent finds and keeps things inside a guest: every guest path is taken under a
/// root, `/` in a real guest and a VM's guest-root folder under the local fabric (or in tests).
public struct GuestPaths: Sendable, Equatable {
    /// The root as given, normalised: `/`, or an absolute path without a trailing slash.
    public let root: String

    /// - Parameter root: an absolute path; relative ones are taken from the working directory.
    public init(root: String = "/") {
        var path = root.isEmpty ? "/" : root
        if !path.hasPrefix("/") {
            path = FileIO.currentDirectory() + "/" + path
        }
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        self.root = path
    }

    /// True for a real guest, where the agent works on the whole machine.
    public var isSystemRoot: Bool { root == "/" }

    /// The host path of a guest path: `/etc/coffre` under root `/srv/vm1` is `/srv/vm1/etc/coffre`.
    public func host(_ guestPath: String) -> String {
        let trimmed = guestPath.hasPrefix("/") ? guestPath : "/" + guestPath
        return isSystemRoot ? trimmed : root + (trimmed == "/" ? "" : trimmed)
    }

    /// The guest path of a host path under the root (the inverse of `host(_:)`); nil outside it.
    public func guest(_ hostPath: String) -> String? {
        if isSystemRoot { return hostPath }
        if hostPath == root { return "/" }
        guard hostPath.hasPrefix(root + "/") else { return nil }
        return String(hostPath.dropFirst(root.count))
    }

    /// The folders searched for `VMSnapshotScriptPluginConfig.json`, in order (S1).
    public var configDirectories: [String] { [host("/etc/coffre"), host("/etc/azure")] }
    /// Where the agent appends its diagnostics.
    public var logDirectory: String { host("/var/log/coffre") }
    /// Where the state shared by `prepare`, the watchdog and `release` lives.
    public var stateDirectory: String { host("/var/lib/coffre") }
    /// The freeze state of the current job.
    public var stateFile: String { stateDirectory + "/state.json" }
    /// Held (flock) by whichever agent process changes the state.
    public var lockFile: String { stateDirectory + "/agent.lock" }
    /// The diagnostics log.
    public var logFile: String { logDirectory + "/agent.log" }
}
