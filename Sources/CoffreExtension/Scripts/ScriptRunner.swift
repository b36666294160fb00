public import CoffreCore
import CoffreSystem
import Foundation

/// Runs one script with retries and a timeout (S5, C2).
///
/// Every attempt really starts the script again (the original extension re-read the first
/// attempt's exit code). Each attempt runs in its own process group, so a timeout kills the
/// script and everything it started. One timeout covers all attempts together.
public struct ScriptRunner: Sendable {
    /// How much output is kept per attempt.
    public static let tailBytes = 4096

    /// The script on disk (a host path).
    public var executable: String
    /// The path shown in reports (the guest path from the configuration).
    public var displayPath: String
    /// Arguments after the script's path.
    public var arguments: [String]
    /// Attempts after the first failed one.
    public var retries: Int
    /// Seconds for all attempts together.
    public var timeout: Double
    /// Seconds to wait before a retry.
    public var retryPause: Double
    /// Variables added to the agent's environment.
    public var environment: [String: String]

    /// Describes one script's execution.
    public init(
        executable: String, displayPath: String? = nil, arguments: [String] = [], retries: Int = 0,
        timeout: Double, retryPause: Double = 0, environment: [String: String] = [:]
    ) {
        self.executable = executable
        self.displayPath = displayPath ?? executable
        self.arguments = arguments
        self.retries = retries
        self.timeout = timeout
        self.retryPause = retryPause
        self.environment = environment
    }

    /// What running the script gave.
    public struct Outcome: Sendable, Equatable {
        /// Every attempt, in order.
        public var attempts: [ScriptRun.Attempt]
        /// Whether the last attempt succeeded.
        public var succeeded: Bool { attempts.last?.exitCode == 0 && attempts.last?.timedOut == false }
        /// Whether the timeout ended the run.
        public var timedOut: Bool { attempts.last?.timedOut == true }

        /// The run as a report shows it.
        public func run(_ phase: ScriptRun.Phase, path: String) -> ScriptRun {
            ScriptRun(phase: phase, path: path, succeeded: succeeded, attempts: attempts)
        }
    }

    /// Runs the script until one attempt exits 0, the retries are used up, or the time is.
    /// Blocks the calling thread.
    public func run() -> Outcome {
        let start = Monotonic.now()
        let deadline = start + timeout
        var attempts: [ScriptRun.Attempt] = []
        for attempt in 0...max(retries, 0) {
            if attempt > 0 {
                let pause = min(retryPause, deadline - Monotonic.now())
                if pause > 0 { Monotonic.sleep(pause) }
                // No time left for another try: the failure stands as it is.
                if Monotonic.now() >= deadline { break }
            }
            let result = runOnce(attempt: attempt + 1, deadline: deadline)
            attempts.append(result)
            if result.timedOut || result.exitCode == 0 { break }
        }
        return Outcome(attempts: attempts)
    }

    private func runOnce(attempt: Int, deadline: Double) -> ScriptRun.Attempt {
        let started = Monotonic.now()
        var environment = self.environment
        environment["COFFRE_SCRIPT_ATTEMPT"] = String(attempt)
        var child = ChildProcess(arguments: [executable] + arguments, environment: environment,
                                 timeout: .milliseconds(Int64(max(0, deadline - started) * 1000)))
        // Both streams in one pipe, in the order written; the script path is taken as given.
        child.output = .merged(.tail(Self.tailBytes))
        child.searchPath = false
        // What was written before the exit; children still holding the pipe are not waited for.
        child.drainGrace = .zero
        do {
            let output = try child.runBlocking()
            return ScriptRun.Attempt(exitCode: output.termination.exitCode, timedOut: false, seconds: Self.rounded(output.seconds),
                                     outputTail: Self.text(output.stdout))
        } catch .timedOut(let output) {
            return ScriptRun.Attempt(exitCode: nil, timedOut: true, seconds: Self.rounded(output.seconds),
                                     outputTail: Self.text(output.stdout))
        } catch .couldNotStart(let code) {
            // 127 is what a shell answers for a command it cannot run.
            return ScriptRun.Attempt(exitCode: 127, timedOut: false, seconds: Monotonic.now() - started,
                                     outputTail: "cannot start \(displayPath): \(errnoDescription(code))")
        } catch {
            // Not cancellable: no flag was given.
            return ScriptRun.Attempt(exitCode: nil, timedOut: true, seconds: Monotonic.now() - started, outputTail: "")
        }
    }

    private static func rounded(_ seconds: Double) -> Double { (seconds * 1000).rounded() / 1000 }

    private static func text(_ output: [UInt8]) -> String { ChildProcess.Output.text(output, last: tailBytes) }
}
