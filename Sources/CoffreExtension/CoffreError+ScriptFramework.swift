public import CoffreCore
import CoffreSystem
import Foundation

/// Seed 001's error table (S3), in English, and the agent's own errors.
///
/// Each seed error keeps the seed's message and recommended action; what the agent knows
/// beyond it (which file, which exit status) follows in parentheses.
extension CoffreError {
    private static func withDetail(_ message: String, _ detail: String?) -> String {
        guard let detail, !detail.isEmpty else { return message }
        return "\(message) (\(detail))"
    }

    private static func name(_ phase: ScriptRun.Phase) -> String { phase == .pre ? "Pre" : "Post" }

    /// PreScriptExecutionFailed / PostScriptExecutionFailed: the script ran and failed.
    public static func scriptExecutionFailed(_ phase: ScriptRun.Phase, detail: String?) -> CoffreError {
        switch phase {
        case .pre:
            CoffreError(.preScriptExecutionFailed,
                        withDetail("The pre-script returned an error, so the backup may not be application-consistent", detail),
                        workaround: "Look at your script's error logs to fix the problem")
        case .post:
            CoffreError(.postScriptExecutionFailed,
                        withDetail("The post-script returned an error that may affect the state of the application", detail),
                        workaround: "Look at your script's error logs to fix the problem and check the state of the application")
        }
    }

    /// PreScriptNotFound / PostScriptNotFound: nothing at the configured location.
    public static func scriptNotFound(_ phase: ScriptRun.Phase, detail: String?) -> CoffreError {
        let lower = phase == .pre ? "pre-script" : "post-script"
        return CoffreError(phase == .pre ? .preScriptNotFound : .postScriptNotFound,
                           withDetail("The \(lower) was not found at the location given in the VMSnapshotScriptPluginConfig.json configuration file", detail),
                           workaround: "Make sure the \(lower) is present at the path given in the configuration file, so that the backup is application-consistent")
    }

    /// IncorrectPluginhostFile: the plugin host file is damaged, so no script can run.
    public static func incorrectPluginhostFile(detail: String?) -> CoffreError {
        CoffreError(.incorrectPluginhostFile,
                    withDetail("The Pluginhost file shipped with the extension (VmSnapshotLinux; for Coffre, coffre-agent and its VMSnapshotPluginHost.conf) is damaged, so the pre-script and post-script cannot run and the backup will not be application-consistent", detail),
                    workaround: "Uninstall the extension; it is reinstalled automatically with the next backup, which fixes the problem (a VMSnapshotPluginHost.conf copied into /etc/coffre or /etc/azure by hand can instead be fixed or removed)")
    }

    /// IncorrectJSONConfigFile: VMSnapshotScriptPluginConfig.json cannot be used.
    public static func incorrectJSONConfigFile(detail: String?) -> CoffreError {
        CoffreError(.incorrectJSONConfigFile,
                    withDetail("The VMSnapshotScriptPluginConfig.json file is incorrect, so the pre-script and post-script cannot run and the backup will not be application-consistent", detail),
                    workaround: "Download a fresh copy from GitHub (MicrosoftAzureBackup/VMSnapshotPluginConfig, or the template in Coffre's docs/extension.md) and configure it again")
    }

    /// InsufficientPermissionforPre-Script / InsufficientPermissionforPost-Script (S2).
    public static func insufficientPermission(_ phase: ScriptRun.Phase, detail: String?) -> CoffreError {
        CoffreError(phase == .pre ? .insufficientPermissionForPreScript : .insufficientPermissionForPostScript,
                    withDetail("To run scripts, the root user must own the file and the file must have \"700\" permissions, that is, only the owner may have \"read\", \"write\" and \"execute\" permissions", detail),
                    workaround: "Make sure the \"root\" user is the \"owner\" of the script file and that only the owner has \"read\", \"write\" and \"execute\" permissions")
    }

    /// PreScriptTimeout / PostScriptTimeout: the script's attempts outlived `timeoutInSeconds`.
    public static func scriptTimeout(_ phase: ScriptRun.Phase, configDirectory: String, detail: String?) -> CoffreError {
        let lower = phase == .pre ? "pre-script" : "post-script"
        return CoffreError(phase == .pre ? .preScriptTimeout : .postScriptTimeout,
                           withDetail("Running the application-consistent backup \(lower) timed out", detail),
                           workaround: "Check the script and raise the timeout in the VMSnapshotScriptPluginConfig.json file located in \(configDirectory)")
    }

    /// Another agent command holds the lock.
    public static func agentBusy(_ lockFile: String) -> CoffreError {
        CoffreError(.agentBusy, "Another coffre-agent command is running in this guest (it holds \(lockFile))",
                    workaround: "Retry when it has finished")
    }

    /// A second `prepare` while file systems are frozen.
    public static func guestAlreadyFrozen(job: String, until deadline: Date?) -> CoffreError {
        CoffreError(.guestAlreadyFrozen,
                    "File systems are already frozen for job \(job)\(deadline.map { " until \(instant($0))" } ?? ""); a second freeze is refused",
                    workaround: "Release that job first (coffre-agent release --job \(job)); its watchdog thaws by itself at the deadline otherwise")
    }

    /// A second `prepare` while an earlier one's post-script is still owed.
    public static func guestAlreadyPrepared(job: String, until deadline: Date?) -> CoffreError {
        CoffreError(.guestAlreadyPrepared,
                    "Job \(job) is prepared in this guest and not yet released\(deadline.map { " (its watchdog releases it at \(instant($0)))" } ?? "")",
                    workaround: "Release that job first (coffre-agent release --job \(job))")
    }

    /// FIFREEZE failed; what was frozen has been thawed.
    public static func freezeFailed(_ mountPoint: String, errno code: Int32) -> CoffreError {
        CoffreError(.freezeFailed,
                    "Could not freeze \(mountPoint): \(errnoDescription(code)); nothing was left frozen, so the snapshot is crash-consistent",
                    workaround: "Check that `fsfreeze -f \(mountPoint)` works in the guest, or list the mount in fsFreezeSkipMounts")
    }

    /// FITHAW failed on a file system the agent had frozen.
    public static func thawFailed(_ mountPoint: String, errno code: Int32) -> CoffreError {
        CoffreError(.thawFailed, "Could not thaw \(mountPoint): \(errnoDescription(code))",
                    workaround: "Run `fsfreeze -u \(mountPoint)` as root in the guest")
    }

    /// The watchdog did not start, so nothing was frozen.
    public static func watchdogFailed(_ detail: String) -> CoffreError {
        CoffreError(.watchdogFailed,
                    "The thaw watchdog could not be started (\(detail)); file systems were not frozen, so the snapshot is crash-consistent",
                    workaround: "Check that the coffre-agent executable can be run by root in the guest")
    }

    /// The deadline passed before `release`: the watchdog thawed and ran the post-script.
    public static func thawedByWatchdog(at thawed: Date) -> CoffreError {
        CoffreError(.thawedByWatchdog,
                    "The watchdog thawed the file systems at \(instant(thawed)), before release came; a snapshot taken then is only crash-consistent",
                    workaround: "Release the guest sooner after the snapshot, or raise the thaw deadline (--thaw-after or thawDeadlineSeconds)")
    }

    /// `release` for a job this guest has not prepared.
    public static func notPrepared(job: String, current: String?) -> CoffreError {
        CoffreError(.notPrepared,
                    "Job \(job) was not prepared in this guest\(current.map { " (the last prepared job is \($0))" } ?? "")",
                    workaround: "Call prepare for the job first; a release answers only its own job's prepare")
    }

    /// The state file exists but cannot be read.
    public static func agentStateDamaged(_ path: String, detail: String) -> CoffreError {
        CoffreError(.agentStateDamaged, "The agent's state file \(path) cannot be read: \(detail)",
                    workaround: "Check `coffre-agent status` and `fsfreeze -u` any file system left frozen, then remove the file")
    }

    static func instant(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
