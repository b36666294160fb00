public import CoffreCore
import Foundation
import Synchronization

/// A guest channel that answers as told and records what it was asked.
public final class FakeGuestChannel: GuestChannel {
    /// How the fake guest behaves.
    public enum Behavior: Sendable {
        /// Scripts succeed around a freeze: application-consistent.
        case applicationConsistent
        /// Frozen, no scripts: file-system-consistent.
        case fileSystemConsistent
        /// The agent reports an error and `ok == false` (continueBackupOnFailure=false).
        case refuses(ErrorInfo)
        /// The pre-script failed but the backup goes on (continueBackupOnFailure=true).
        case preScriptFailsAndContinues(ErrorInfo)
        /// `prepare` succeeds; the post-script fails and `release` says the backup must fail
        /// (continueBackupOnFailure=false on a multi-disk VM).
        case postScriptRefuses(ErrorInfo)
        /// The agent does not answer.
        case unreachable
        /// `prepare` takes this long (to exercise timeouts and cancellation).
        case slow(Duration)
    }

    private let state: Mutex<(behavior: Behavior, calls: [String])>

    public init(_ behavior: Behavior = .applicationConsistent) {
        state = Mutex((behavior, []))
    }

    public var behavior: Behavior {
        get { state.withLock { $0.behavior } }
        set { state.withLock { $0.behavior = newValue } }
    }

    /// `prepare <job> <disks>` and `release <job>`, in call order.
    public var calls: [String] { state.withLock { $0.calls } }

    public func prepare(job: String, diskCount: Int) async throws -> AgentReport {
        let behavior = state.withLock { s in
            s.calls.append("prepare \(job) \(diskCount)")
            return s.behavior
        }
        let script = ScriptRun(phase: .pre, path: "/etc/coffre/pre.sh", succeeded: true,
                               attempts: [.init(exitCode: 0, timedOut: false, seconds: 0.01, outputTail: "pre ok")])
        switch behavior {
        case .applicationConsistent, .postScriptRefuses:
            return AgentReport(command: "prepare", job: job, agentVersion: "1.0.0", frozen: true,
                               frozenFileSystems: ["/"], consistency: .applicationConsistent, scripts: [script])
        case .fileSystemConsistent:
            return AgentReport(command: "prepare", job: job, agentVersion: "1.0.0", frozen: true,
                               frozenFileSystems: ["/"], consistency: .fileSystemConsistent)
        case .refuses(let error):
            return AgentReport(command: "prepare", job: job, agentVersion: "1.0.0", ok: false, errors: [error])
        case .preScriptFailsAndContinues(let error):
            var failed = script
            failed.succeeded = false
            failed.attempts[0].exitCode = 1
            return AgentReport(command: "prepare", job: job, agentVersion: "1.0.0", frozen: true, frozenFileSystems: ["/"],
                               consistency: .fileSystemConsistent, scripts: [failed], errors: [error])
        case .unreachable:
            throw CoffreError(.guestUnreachable, "The guest agent did not answer")
        case .slow(let duration):
            try await Task.sleep(for: duration)
            return AgentReport(command: "prepare", job: job, agentVersion: "1.0.0", frozen: true,
                               frozenFileSystems: ["/"], consistency: .fileSystemConsistent)
        }
    }

    public func release(job: String) async throws -> AgentReport {
        let behavior = state.withLock { s in
            s.calls.append("release \(job)")
            return s.behavior
        }
        switch behavior {
        case .applicationConsistent:
            let script = ScriptRun(phase: .post, path: "/etc/coffre/post.sh", succeeded: true,
                                   attempts: [.init(exitCode: 0, timedOut: false, seconds: 0.01, outputTail: "post ok")])
            return AgentReport(command: "release", job: job, agentVersion: "1.0.0", consistency: .applicationConsistent,
                               freezeDurationMilliseconds: 42, scripts: [script])
        case .postScriptRefuses(let error):
            let script = ScriptRun(phase: .post, path: "/etc/coffre/post.sh", succeeded: false,
                                   attempts: [.init(exitCode: 1, timedOut: false, seconds: 0.01, outputTail: "post failed")])
            return AgentReport(command: "release", job: job, agentVersion: "1.0.0", ok: false, consistency: .fileSystemConsistent,
                               freezeDurationMilliseconds: 42, scripts: [script], errors: [error])
        case .unreachable:
            throw CoffreError(.guestUnreachable, "The guest agent did not answer")
        default:
            return AgentReport(command: "release", job: job, agentVersion: "1.0.0", consistency: .fileSystemConsistent,
                               freezeDurationMilliseconds: 42)
        }
    }
}
