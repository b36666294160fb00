#if Libvirt
public import Foundation

/// What `guest-info` says about qemu-guest-agent.
public struct GuestAgentInfo: Sendable, Equatable {
    /// The agent's version, e.g. `7.2.22`.
    public var version: String
    /// Commands the agent knows and has enabled.
    public var enabledCommands: Set<String>
}

/// What `guest-get-osinfo` says about the guest's operating system (fields it left out are nil).
public struct GuestOSInfo: Sendable, Equatable {
    /// `/etc/os-release` ID (`debian`, `ubuntu`) or `mswindows`.
    public var id: String?
    public var name: String?
    public var prettyName: String?
    public var version: String?
    public var versionID: String?
    public var kernelRelease: String?
    public var machine: String?

    /// Coffre's `osType`: `windows` or `linux`.
    public var osType: String { id == "mswindows" ? "windows" : "linux" }
}

/// How a command run with `guest-exec` ended.
public struct GuestExecResult: Sendable, Equatable {
    /// The exit status; nil when a signal ended the process.
    public var exitCode: Int32?
    /// The signal that ended the process, if one did.
    public var signal: Int32?
    public var stdout: Data
    public var stderr: Data
    /// The agent captured only part of the output (it keeps at most 16 MiB per stream).
    public var truncated: Bool

    /// Standard output as text.
    public var output: String { String(decoding: stdout, as: UTF8.self) }
    /// Standard error as text.
    public var errorOutput: String { String(decoding: stderr, as: UTF8.self) }
}
#endif
