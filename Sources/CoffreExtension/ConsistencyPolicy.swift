public import CoffreCore

/// C1 and S4 as pure functions: what a job's scripts and freeze make of a recovery point.
public enum ConsistencyPolicy {
    /// What `prepare` may do once the pre-script has run.
    public struct PrepareDecision: Sendable, Equatable {
        /// False: the backup must fail (continueBackupOnFailure=false on a multi-disk VM).
        public var ok: Bool
        /// Whether freezing is still worth it; not when the point is crash-consistent anyway.
        public var mayFreeze: Bool
    }

    /// S4: a script problem with continueBackupOnFailure=false fails the backup, except on a
    /// single-disk VM, which falls back to crash-consistent (so there is nothing to freeze).
    /// - Parameter disks: the VM's disk count; 0 when unknown, which counts as several.
    public static func prepare(scriptFailed: Bool, continueOnFailure: Bool, disks: Int) -> PrepareDecision {
        guard scriptFailed && !continueOnFailure else { return PrepareDecision(ok: true, mayFreeze: true) }
        return PrepareDecision(ok: disks == 1, mayFreeze: false)
    }

    /// The consistency of a snapshot taken right after `prepare` (C1). Application-consistent
    /// needs both scripts configured, the pre-script's success and a freeze; `release` confirms
    /// it only if the post-script succeeds too.
    public static func afterPrepare(frozen: Bool, preScriptSucceeded: Bool, postScriptConfigured: Bool) -> Consistency {
        guard frozen else { return .crashConsistent }
        return preScriptSucceeded && postScriptConfigured ? .applicationConsistent : .fileSystemConsistent
    }

    /// The final consistency after `release`, and whether the backup may go on.
    /// - Parameters:
    ///   - prepared: what `prepare` reported.
    ///   - postScriptFailed: the post-script failed, timed out, was missing or insecure.
    ///   - thawedEarly: the watchdog thawed before `release` came, so nothing says the
    ///     snapshot was taken while frozen.
    public static func afterRelease(
        prepared: Consistency, postScriptFailed: Bool, continueOnFailure: Bool, disks: Int, thawedEarly: Bool
    ) -> (consistency: Consistency, ok: Bool) {
        if thawedEarly { return (.crashConsistent, true) }
        guard postScriptFailed else { return (prepared, true) }
        if !continueOnFailure && disks == 1 { return (.crashConsistent, true) }
        return (max(prepared, .fileSystemConsistent), continueOnFailure)
    }
}
