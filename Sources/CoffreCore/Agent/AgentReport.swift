public import Foundation

/// How consistent a recovery point is (C1), from best to worst.
public enum Consistency: String, Codable, Sendable, CaseIterable, Comparable {
    /// Pre- and post-script succeeded around a frozen snapshot.
    case applicationConsistent
    /// File systems were frozen; no scripts ran, or one failed with continueBackupOnFailure.
    case fileSystemConsistent
    /// Nothing was frozen: the VM was stopped, the agent unreachable, or freezing impossible.
    case crashConsistent

    private var rank: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (lhs: Consistency, rhs: Consistency) -> Bool { lhs.rank < rhs.rank }
}

/// The one JSON document `coffre-agent` prints on stdout for every command
/// (protocol version 1, see `docs/agent-protocol.md`). Fields are added, never renamed;
/// readers ignore fields they do not know.
public struct AgentReport: Codable, Sendable, Equatable {
    public static let protocolVersion = 1

    public var protocolVersion: Int
    /// `prepare`, `release`, `status` or `version`.
    public var command: String
    public var job: String?
    /// The agent's own version.
    public var agentVersion: String
    /// False when the backup must fail (continueBackupOnFailure=false and a script failed on a
    /// multi-disk VM, or the agent itself failed); `errors` says why.
    public var ok: Bool
    /// Whether file systems are frozen when this report is written.
    public var frozen: Bool
    /// File systems frozen by `prepare` (mount points, `/` last).
    public var frozenFileSystems: [String]
    /// The consistency a snapshot taken now (after `prepare`) or just taken (after `release`) has.
    public var consistency: Consistency?
    /// After `release`: how long the file systems stayed frozen, in milliseconds.
    public var freezeDurationMilliseconds: Int?
    /// When the watchdog thaws by itself if `release` does not come.
    public var thawDeadline: Date?
    /// Scripts run by this command.
    public var scripts: [ScriptRun]
    /// Every problem met, with seed 001's code, message and recommended action.
    public var errors: [ErrorInfo]

    public init(
        command: String, job: String? = nil, agentVersion: String, ok: Bool = true, frozen: Bool = false,
        frozenFileSystems: [String] = [], consistency: Consistency? = nil,
        freezeDurationMilliseconds: Int? = nil, thawDeadline: Date? = nil,
        scripts: [ScriptRun] = [], errors: [ErrorInfo] = []
    ) {
        self.protocolVersion = Self.protocolVersion
        self.command = command
        self.job = job
        self.agentVersion = agentVersion
        self.ok = ok
        self.frozen = frozen
        self.frozenFileSystems = frozenFileSystems
        self.consistency = consistency
        self.freezeDurationMilliseconds = freezeDurationMilliseconds
        self.thawDeadline = thawDeadline
        self.scripts = scripts
        self.errors = errors
    }

    /// The encoding both sides use: ISO 8601 dates, sorted keys.
    public static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }

    public static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}

/// One script's runs during a `prepare` (pre-script) or `release` (post-script) (C2).
public struct ScriptRun: Codable, Sendable, Equatable {
    public enum Phase: String, Codable, Sendable { case pre, post }
    public var phase: Phase
    public var path: String
    public var succeeded: Bool
    /// Every attempt, in order; retries really re-run the script.
    public var attempts: [Attempt]

    public struct Attempt: Codable, Sendable, Equatable {
        /// Nil when the attempt was killed (timeout) before it exited.
        public var exitCode: Int32?
        public var timedOut: Bool
        public var seconds: Double
        /// The last 4 KiB of stdout and stderr together.
        public var outputTail: String

        public init(exitCode: Int32?, timedOut: Bool, seconds: Double, outputTail: String) {
            self.exitCode = exitCode
            self.timedOut = timedOut
            self.seconds = seconds
            self.outputTail = outputTail
        }
    }

    public init(phase: Phase, path: String, succeeded: Bool, attempts: [Attempt]) {
        self.phase = phase
        self.path = path
        self.succeeded = succeeded
        self.attempts = attempts
    }
}

extension AgentReport {
    /// Decodes what `coffre-agent VERB` printed for `vm`, however it was run (a local
    /// subprocess, `guest-exec` through qemu-guest-agent). A report of a newer protocol is
    /// refused: it may mean something this vault would misread.
    public static func decode(_ output: Data, verb: String, vm: VMKey) throws -> AgentReport {
        let report: AgentReport
        do {
            report = try makeDecoder().decode(AgentReport.self, from: output)
        } catch {
            throw CoffreError(.guestAgentError,
                              "coffre-agent \(verb) for \(vm) printed something that is not a protocol report: \(String(decoding: output.prefix(200), as: UTF8.self))",
                              workaround: "Install a coffre-agent that speaks protocol version \(protocolVersion) (register the VM again)")
        }
        guard report.protocolVersion <= protocolVersion else {
            throw CoffreError(.guestAgentError,
                              "coffre-agent \(verb) for \(vm) speaks protocol version \(report.protocolVersion), newer than this vault's \(protocolVersion)",
                              workaround: "Upgrade Coffre, or install the coffre-agent that comes with this version (register the VM again)")
        }
        return report
    }
}
