public import CoffreCore
import CoffreSystem
import Foundation

extension Agent {
    /// `prepare`: pre-script, then freeze, with a watchdog to release by itself (B1, S1–S5).
    /// - Parameters:
    ///   - job: the engine's job id.
    ///   - disks: the VM's disk count (S4's single-disk rule); 0 when unknown.
    public func prepare(job: String, disks: Int) -> AgentReport {
        var report = AgentReport(command: "prepare", job: job, agentVersion: Self.version)
        let log = AgentLog(paths: paths, command: "prepare", job: job)
        do throws(CoffreError) {
            // Until the state says nothing is frozen, nothing may be written: not the log,
            // not a folder. A refused prepare leaves the guest exactly as it found it.
            guard let lock = try store.lock(wait: 0) else { throw CoffreError.agentBusy(paths.lockFile) }
            try withExtendedLifetime(lock) { () throws(CoffreError) in
                if let previous = try store.read(), previous.phase == .prepared {
                    let deadlineAhead = previous.thawDeadline.map { $0 > Date() } ?? false
                    if Self.watchdogAlive(previous.watchdogPid, job: previous.job) || deadlineAhead {
                        if previous.frozen && previous.thawedAt == nil {
                            report.frozen = true
                            report.frozenFileSystems = previous.frozenMountPoints.map(display)
                            report.thawDeadline = previous.thawDeadline
                            throw CoffreError.guestAlreadyFrozen(job: previous.job, until: previous.thawDeadline)
                        }
                        throw CoffreError.guestAlreadyPrepared(job: previous.job, until: previous.thawDeadline)
                    }
                    // Its watchdog is gone and its deadline passed: do the watchdog's work now.
                    log.note("job \(previous.job) was never released and its watchdog is gone; releasing it first")
                    _ = finish(previous, by: .recovery, log: log)
                }
                try prepareLocked(job: job, disks: disks, report: &report, log: log)
            }
        } catch {
            report.ok = false
            report.consistency = report.consistency ?? .crashConsistent
            report.errors.append(ErrorInfo(error))
        }
        if !report.frozen { log.flush() } else { log.discard() }
        return report
    }

    private func prepareLocked(job: String, disks: Int, report: inout AgentReport, log: AgentLog) throws(CoffreError) {
        let configuration = GuestConfiguration.load(paths)
        log.note("root \(paths.root), disks \(disks), config \(configuration.configFile ?? "none")")
        var state = AgentState(job: job, disks: disks, configuration: configuration)
        if let problem = configuration.problem {
            let error = Self.error(for: problem)
            log.note("\(error)")
            report.errors.append(ErrorInfo(error))
        }
        // Recorded before the pre-script runs, so a release still runs the post-script if
        // this process dies on the way.
        try store.write(state)

        let pre = runScript(.pre, configuration, job: job, log: log)
        if let run = pre.run { report.scripts.append(run) }
        if let error = pre.error { report.errors.append(ErrorInfo(error)) }
        state.preScriptSucceeded = pre.succeeded
        state.preScriptFailed = pre.failed

        let config = configuration.config
        let decision = ConsistencyPolicy.prepare(scriptFailed: pre.failed, continueOnFailure: config.continueBackupOnFailure, disks: disks)
        report.ok = decision.ok
        if !decision.ok {
            // The backup fails now and the engine releases only a frozen guest: resume the
            // application at once (post-script) instead of a watchdog minute later, and leave
            // the guest free for the next prepare.
            log.note("the pre-script failed and continueBackupOnFailure is false: the backup fails; releasing now")
            let released = finish(state, by: .prepare, log: log)
            report.scripts += released.scripts
            report.errors += released.errors
            report.consistency = .crashConsistent
            return
        }
        var planned: [String] = []
        if decision.mayFreeze && config.fsFreezeEnabled && !self.configuration.freezeDisabled {
            planned = MountTable.selectForFreeze(try MountTable.current(), paths: paths, skip: config.fsFreezeSkipMounts).map(\.mountPoint)
        }

        // The watchdog first: nothing is frozen unless something is sure to thaw it.
        let thawAfter = self.configuration.thawAfterSeconds ?? config.thawDeadlineSeconds.map(Double.init) ?? Self.defaultThawAfterSeconds
        do {
            state.watchdogPid = try startWatchdog(job: job, after: thawAfter)
            state.thawDeadline = Date(timeIntervalSinceNow: thawAfter)
        } catch {
            log.note("\(error)")
            report.errors.append(ErrorInfo(error))
            planned = []
        }
        state.frozen = !planned.isEmpty
        state.frozenMountPoints = planned
        state.prepareConsistency = ConsistencyPolicy.afterPrepare(
            frozen: state.frozen, preScriptSucceeded: pre.succeeded, postScriptConfigured: configuration.scriptLocation(.post) != nil)
        if state.frozen { state.freezeStartedAt = Date() }
        try store.write(state)
        log.note(planned.isEmpty ? "not freezing" : "freezing \(planned.map(display).joined(separator: ", "))")
        log.flush()

        if !planned.isEmpty {
            do {
                _ = try Freezer.freeze(planned)
            } catch {
                // Freezer thawed what it had frozen: the guest runs on, crash-consistent (C1).
                state.frozen = false
                state.frozenMountPoints = []
                state.freezeStartedAt = nil
                state.prepareConsistency = .crashConsistent
                report.errors.append(ErrorInfo(error))
                log.note("\(error)")
                try store.write(state)
            }
        }
        if state.frozen && self.configuration.holdAfterFreezeSeconds > 0 {
            FileHandle.standardError.write(Data("coffre-agent: frozen, holding \(self.configuration.holdAfterFreezeSeconds) s\n".utf8))
            Monotonic.sleep(self.configuration.holdAfterFreezeSeconds)
        }
        report.frozen = state.frozen
        report.frozenFileSystems = state.frozenMountPoints.map(display)
        report.consistency = state.prepareConsistency
        report.thawDeadline = state.thawDeadline
    }

    /// Starts `coffre-agent watchdog` and waits until it has left our session (setsid), so
    /// that neither killing this process nor its process group can take it down.
    private func startWatchdog(job: String, after seconds: Double) throws(CoffreError) -> Int32 {
        let milliseconds = String(Int((seconds * 1000).rounded()))
        let arguments = [configuration.executablePath, "watchdog", "--job", job, "--after-ms", milliseconds, "--root", paths.root]
        let pid: Int32
        // stdin, stdout and stderr on /dev/null: it must not hold the pipe our caller reads the report from.
        do {
            pid = try ProcessSpawn.spawn(configuration.executablePath, argv: arguments, stdout: .null, stderr: .null)
        } catch {
            throw .watchdogFailed("cannot run \(configuration.executablePath): \(errnoDescription(error.code))")
        }
        let deadline = Monotonic.now() + 10
        while Monotonic.now() < deadline {
            if let status = Processes.reapIfExited(pid) {
                throw .watchdogFailed("it exited at once with status \(status)")
            }
            if Processes.sessionID(of: pid) == pid { return pid }
            Monotonic.sleep(0.01)
        }
        Processes.send(.kill, to: pid)
        Processes.wait(pid)
        throw .watchdogFailed("it did not start within 10 s")
    }
}
