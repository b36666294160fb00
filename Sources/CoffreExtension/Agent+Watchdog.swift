import CoffreCore
import CoffreSystem
import Foundation

extension Agent {
    /// The watchdog (B1): started by `prepare` in a session of its own, it sleeps until the
    /// deadline and then does what `release` would, so the guest never stays frozen and the
    /// application is resumed even if the engine disappears. `release` stops it with SIGTERM.
    /// - Parameter seconds: the deadline, counted on a clock that the guest's time setting
    ///   cannot move.
    public func runWatchdog(job: String, after seconds: Double) {
        // Out of prepare's session and process group: killing either must not reach us.
        Processes.startNewSession()
        Processes.closeInheritedDescriptors()
        Monotonic.sleep(seconds)

        let log = AgentLog(paths: paths, command: "watchdog", job: job)
        guard let state = try? store.read(), state.job == job, state.phase == .prepared else { return }
        // Thaw before taking the lock: its holder may itself be blocked on the frozen file system.
        let thawFailures = Freezer.thaw(state.frozenMountPoints.reversed())
        let thawed = thawFailures.isEmpty ? Date() : nil
        guard let lock = try? store.lock(wait: 3600) else { return }
        withExtendedLifetime(lock) {
            // prepare may have frozen again after our first thaw, or release may have come.
            guard let current = try? store.read(), current.job == job, current.phase == .prepared else { return }
            log.note("deadline reached without release")
            _ = finish(current, by: .watchdog, thawed: thawed, log: log)
            log.flush()
        }
    }
}
