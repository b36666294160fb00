public import CoffreCore
import CoffreSystem
import Foundation

extension Agent {
    /// `release`: thaw, then the post-script (B1). Answers a repeated release, or one that
    /// comes after the watchdog, with the stored report.
    public func release(job: String) -> AgentReport {
        var report = AgentReport(command: "release", job: job, agentVersion: Self.version)
        let log = AgentLog(paths: paths, command: "release", job: job)
        do throws(CoffreError) {
            guard let lock = try store.lock(wait: configuration.lockWaitSeconds) else { throw CoffreError.agentBusy(paths.lockFile) }
            try withExtendedLifetime(lock) { () throws(CoffreError) in
                let state = try store.read()
                guard let state, state.job == job else { throw CoffreError.notPrepared(job: job, current: state?.job) }
                switch state.phase {
                case .released:
                    report = state.releaseReport ?? report
                    log.note("already released by \(state.releasedBy?.rawValue ?? "?"); answering with the stored report")
                case .prepared:
                    report = finish(state, by: .release, log: log)
                }
            }
        } catch {
            report.ok = false
            report.consistency = report.consistency ?? .crashConsistent
            report.errors.append(ErrorInfo(error))
            log.note("\(error)")
        }
        if !report.frozen { log.flush() } else { log.discard() }
        return report
    }

    /// Thaws, runs the post-script and records the release; the caller holds the lock.
    /// Thawing comes first and needs no write, so a release always thaws however the rest goes.
    /// - Parameter thawed: when the caller already thawed (the watchdog, before taking the lock).
    func finish(_ prepared: AgentState, by releaser: AgentState.Releaser, thawed: Date? = nil, log: AgentLog) -> AgentReport {
        var state = prepared
        var report = AgentReport(command: "release", job: state.job, agentVersion: Self.version)
        report.frozenFileSystems = state.frozenMountPoints.map(display)
        let failures = Freezer.thaw(state.frozenMountPoints.reversed())
        if !failures.isEmpty {
            // Still frozen somewhere: writing the state or the log could block, so don't.
            report.frozen = true
            report.ok = false
            report.consistency = state.prepareConsistency
            report.errors = failures.map(ErrorInfo.init)
            return report
        }
        let thawedAt = state.thawedAt ?? thawed ?? Date()
        state.thawedAt = thawedAt
        if state.frozen, let start = state.freezeStartedAt {
            report.freezeDurationMilliseconds = max(0, Int((thawedAt.timeIntervalSince(start) * 1000).rounded()))
            log.note("thawed \(report.frozenFileSystems.joined(separator: ", ")) after \(report.freezeDurationMilliseconds!) ms (\(releaser.rawValue))")
        }
        try? store.write(state)
        log.flush()
        if releaser != .watchdog, Self.watchdogAlive(state.watchdogPid, job: state.job), let pid = state.watchdogPid {
            Processes.send(.terminate, to: pid)
        }

        let post = runScript(.post, state.configuration, job: state.job, log: log)
        if let run = post.run { report.scripts.append(run) }
        if let error = post.error { report.errors.append(ErrorInfo(error)) }
        let thawedEarly = releaser != .release && state.frozen
        if thawedEarly { report.errors.insert(ErrorInfo(.thawedByWatchdog(at: thawedAt)), at: 0) }
        let final = ConsistencyPolicy.afterRelease(
            prepared: state.prepareConsistency, postScriptFailed: post.failed,
            continueOnFailure: state.configuration.config.continueBackupOnFailure, disks: state.disks, thawedEarly: thawedEarly)
        report.consistency = final.consistency
        report.ok = final.ok
        log.note("released by \(releaser.rawValue): \(final.consistency.rawValue)\(final.ok ? "" : ", the backup must fail")")

        state.phase = .released
        state.releasedBy = releaser
        state.releaseReport = report
        do {
            try store.write(state)
        } catch {
            report.errors.append(ErrorInfo(error))
        }
        return report
    }
}
