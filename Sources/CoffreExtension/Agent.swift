public import CoffreCore
import CoffreSystem
import Foundation

/// The in-guest extension (SPEC 5, 6; B1): pre-script and freeze on `prepare`, thaw and
/// post-script on `release`, and a watchdog that releases by itself at a deadline.
///
/// Each command returns the one `AgentReport` the executable prints.
public struct Agent: Sendable {
    /// This agent's version, reported by every command.
    public static let version = "1.0.0"
    /// Seconds after the freeze at which the watchdog thaws when `release` has not come.
    public static let defaultThawAfterSeconds = 60.0

    /// How an agent process runs.
    public struct Configuration: Sendable {
        /// Where guest paths live.
        public var paths: GuestPaths
        /// The thaw deadline given on the command line; else the config's, else 60 s.
        public var thawAfterSeconds: Double?
        /// `--no-freeze`: run the scripts but never freeze.
        public var freezeDisabled: Bool
        /// The `coffre-agent` executable the watchdog is started from.
        public var executablePath: String
        /// Fault injection for tests: stay alive this long after freezing, before answering.
        public var holdAfterFreezeSeconds: Double
        /// How long `release` and the watchdog wait for another agent command to finish.
        public var lockWaitSeconds: Double

        /// A configuration; `executablePath` defaults to the running executable.
        public init(
            paths: GuestPaths = GuestPaths(), thawAfterSeconds: Double? = nil, freezeDisabled: Bool = false,
            executablePath: String? = nil, holdAfterFreezeSeconds: Double = 0, lockWaitSeconds: Double = 120
        ) {
            self.paths = paths
            self.thawAfterSeconds = thawAfterSeconds
            self.freezeDisabled = freezeDisabled
            self.executablePath = executablePath ?? Self.runningExecutable()
            self.holdAfterFreezeSeconds = holdAfterFreezeSeconds
            self.lockWaitSeconds = lockWaitSeconds
        }

        static func runningExecutable() -> String {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
            return n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
        }
    }

    /// How this agent runs.
    public var configuration: Configuration
    var paths: GuestPaths { configuration.paths }
    var store: StateStore { StateStore(paths: paths) }

    /// An agent working under `configuration.paths.root`.
    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// `version`: who answers.
    public func version() -> AgentReport {
        AgentReport(command: "version", agentVersion: Self.version)
    }

    /// `status`: what the last job left, without changing anything (safe while frozen).
    public func status() -> AgentReport {
        var report = AgentReport(command: "status", agentVersion: Self.version)
        do {
            guard let state = try store.read() else { return report }
            report.job = state.job
            report.frozenFileSystems = state.frozenMountPoints.map(display)
            report.thawDeadline = state.thawDeadline
            switch state.phase {
            case .prepared:
                report.frozen = state.frozen && state.thawedAt == nil
                report.consistency = state.prepareConsistency
            case .released:
                report.consistency = state.releaseReport?.consistency
                report.freezeDurationMilliseconds = state.releaseReport?.freezeDurationMilliseconds
            }
        } catch {
            report.ok = false
            report.errors = [ErrorInfo(error)]
        }
        return report
    }

    /// A mount point as the guest names it.
    func display(_ hostPath: String) -> String { paths.guest(hostPath) ?? hostPath }

    /// Whether `pid` is still this job's watchdog (not a dead one, nor a recycled pid).
    static func watchdogAlive(_ pid: Int32?, job: String) -> Bool {
        guard let pid, Processes.exists(pid), let arguments = Processes.arguments(of: pid) else { return false }
        return arguments.contains("watchdog") && arguments.contains(job)
    }
}
