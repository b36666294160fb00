import CoffreCore
import CoffreSystem
import Foundation

extension Agent {
    /// What running one phase's script gave.
    struct PhaseResult {
        /// The run, also for a script that could not start (no attempts then).
        var run: ScriptRun?
        /// The seed error for a failure.
        var error: CoffreError?
        /// Whether the phase counts as failed for S4 (a config problem counts too).
        var failed: Bool
        /// Whether the script ran to success.
        var succeeded: Bool { run?.succeeded == true }
    }

    /// Runs the phase's script if one is configured and passes S2's checks.
    func runScript(_ phase: ScriptRun.Phase, _ configuration: GuestConfiguration, job: String, log: AgentLog) -> PhaseResult {
        guard configuration.problem == nil else { return PhaseResult(failed: true) }
        guard let location = configuration.scriptLocation(phase) else { return PhaseResult(failed: false) }
        let notRun = ScriptRun(phase: phase, path: location, succeeded: false, attempts: [])
        let hostPath = paths.host(location)
        guard let status = FileIO.status(hostPath) else {
            log.note("\(phase.rawValue)-script \(location) not found")
            return PhaseResult(run: notRun, error: .scriptNotFound(phase, detail: "nothing at \(location)"), failed: true)
        }
        guard status.kind == .regular else {
            return PhaseResult(run: notRun, error: .scriptNotFound(phase, detail: "\(location) is not a regular file"), failed: true)
        }
        // S2: root's, nobody else may read, write or run it; the owner must be able to run it.
        guard status.uid == 0, status.permissions & 0o077 == 0, status.permissions & 0o500 == 0o500 else {
            log.note("\(phase.rawValue)-script \(location) refused: uid \(status.uid), mode \(octal(status.permissions))")
            return PhaseResult(
                run: notRun,
                error: .insufficientPermission(phase, detail: "\(location) is owned by uid \(status.uid) with mode \(octal(status.permissions))"),
                failed: true)
        }
        let config = configuration.config
        let runner = ScriptRunner(
            executable: hostPath, displayPath: location,
            arguments: phase == .pre ? config.preScriptParams : config.postScriptParams,
            retries: phase == .pre ? config.preScriptNoOfRetries : config.postScriptNoOfRetries,
            timeout: Double(configuration.scriptTimeout),
            retryPause: Double(config.retryPauseSeconds),
            environment: ["COFFRE_JOB": job, "COFFRE_SCRIPT_PHASE": phase.rawValue, "COFFRE_GUEST_ROOT": paths.root])
        log.note("\(phase.rawValue)-script \(location): up to \(runner.retries + 1) attempt(s) in \(configuration.scriptTimeout) s")
        let outcome = runner.run()
        let run = outcome.run(phase, path: location)
        for (index, attempt) in outcome.attempts.enumerated() {
            log.note("\(phase.rawValue)-script attempt \(index + 1): \(attempt.timedOut ? "timed out" : "exit \(attempt.exitCode ?? -1)") in \(attempt.seconds) s")
        }
        if outcome.timedOut {
            return PhaseResult(run: run, error: .scriptTimeout(phase, configDirectory: configuration.configDirectory,
                detail: "\(location) was stopped after \(configuration.scriptTimeout) s, \(outcome.attempts.count) attempt(s)"), failed: true)
        }
        if !outcome.succeeded {
            let codes = outcome.attempts.map { $0.exitCode.map(String.init) ?? "?" }.joined(separator: ", ")
            return PhaseResult(run: run, error: .scriptExecutionFailed(phase,
                detail: "\(location) exited with status \(codes) in \(outcome.attempts.count) attempt(s)"), failed: true)
        }
        return PhaseResult(run: run, failed: false)
    }

    /// The error a configuration problem is reported with, once, by `prepare`.
    static func error(for problem: GuestConfiguration.Problem) -> CoffreError {
        switch problem {
        case .incorrectJSON(let detail): .incorrectJSONConfigFile(detail: detail)
        case .incorrectPluginHost(let detail): .incorrectPluginhostFile(detail: detail)
        // S2 names no code of its own for the configuration file: an untrusted file stops
        // the pre-script first, so it is reported as the pre-script's (docs/extension.md).
        case .insecureConfig(let detail): .insufficientPermission(.pre, detail: detail)
        }
    }
}
