public import CoffreCore
public import Foundation

/// What one job left in the guest, in `<root>/var/lib/coffre/state.json`: how `release` (a
/// new process), the watchdog and `status` know what `prepare` did.
///
/// Written before the freeze and after the thaw, never in between: while the guest is frozen
/// the file system holding this file may be frozen too, and any write to it would block.
public struct AgentState: Codable, Sendable, Equatable {
    /// Where a job stands.
    public enum Phase: String, Codable, Sendable {
        /// `prepare` ran; `release` (or the watchdog) is owed.
        case prepared
        /// Released; `release` answers again with the stored report.
        case released
    }

    /// Who finished the job.
    public enum Releaser: String, Codable, Sendable {
        /// The engine's `release`.
        case release
        /// The watchdog, at the deadline.
        case watchdog
        /// A later `prepare` that found the job's watchdog gone past its deadline.
        case recovery
        /// The job's own `prepare`, which failed the backup (continueBackupOnFailure=false).
        case prepare
    }

    /// The state file's format.
    public var version = 1
    /// The job's id, as the engine gave it.
    public var job: String
    /// The VM's disk count, for S4's single-disk rule.
    public var disks: Int
    /// Where the job stands.
    public var phase: Phase
    /// The configuration `prepare` read; the post-script comes from it.
    public var configuration: GuestConfiguration
    /// Whether the pre-script was configured and succeeded.
    public var preScriptSucceeded: Bool
    /// Whether a pre-script problem was reported (failed, missing, insecure, config error).
    public var preScriptFailed: Bool
    /// The `prepare` report's consistency.
    public var prepareConsistency: Consistency
    /// Whether the file systems in `frozenMountPoints` are (or were about to be) frozen.
    public var frozen: Bool
    /// Host mount points, in freeze order.
    public var frozenMountPoints: [String]
    /// Taken just before FIFREEZE.
    public var freezeStartedAt: Date?
    /// When the watchdog releases the job by itself.
    public var thawDeadline: Date?
    /// The watchdog's process id.
    public var watchdogPid: Int32?
    /// When the file systems were thawed.
    public var thawedAt: Date?
    /// Who released the job.
    public var releasedBy: Releaser?
    /// The report of the release, given again to a repeated `release`.
    public var releaseReport: AgentReport?

    /// A fresh state for a job about to be prepared.
    public init(job: String, disks: Int, configuration: GuestConfiguration) {
        self.job = job
        self.disks = disks
        self.phase = .prepared
        self.configuration = configuration
        self.preScriptSucceeded = false
        self.preScriptFailed = false
        self.prepareConsistency = .crashConsistent
        self.frozen = false
        self.frozenMountPoints = []
    }
}
