import CoffreCore
@testable import CoffreExtension
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Running scripts: retries, timeout, process groups, output (S5, C2)", .serialized)
struct ScriptRunnerTests {
    @Test("A script failing twice then succeeding, with 2 retries, succeeds on its 3rd real run")
    func retriesReallyRerun() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        let counter = root.host("/counter")
        try root.countingScript("/flaky.sh", counter: counter, succeedsOnRun: 3)
        let outcome = ScriptRunner(executable: root.host("/flaky.sh"), retries: 2, timeout: 30).run()
        #expect(outcome.succeeded)
        #expect(outcome.attempts.map(\.exitCode) == [7, 7, 0])
        #expect(outcome.attempts.map(\.outputTail) == ["run 1\n", "run 2\n", "run 3\n"])
        #expect(try String(contentsOfFile: counter, encoding: .utf8) == "3\n")
    }

    @Test("With fewer retries than it needs, the script fails after exactly retries + 1 runs")
    func retriesExhausted() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        let counter = root.host("/counter")
        try root.countingScript("/flaky.sh", counter: counter, succeedsOnRun: 3)
        let outcome = ScriptRunner(executable: root.host("/flaky.sh"), retries: 1, timeout: 30).run()
        #expect(!outcome.succeeded && !outcome.timedOut)
        #expect(outcome.attempts.map(\.exitCode) == [7, 7])
        #expect(try String(contentsOfFile: counter, encoding: .utf8) == "2\n")
    }

    @Test("One timeout covers all attempts: the third attempt is killed when the time is up")
    func timeoutAcrossRetries() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.script("/slow.sh", "sleep 1; exit 1")
        let started = Date()
        let outcome = ScriptRunner(executable: root.host("/slow.sh"), retries: 10, timeout: 2.5).run()
        let elapsed = Date().timeIntervalSince(started)
        #expect(outcome.timedOut && !outcome.succeeded)
        // Three on an idle machine (1 s, 1 s, killed at 2.5 s); a loaded one may fit only two.
        #expect((2...3).contains(outcome.attempts.count), "\(outcome.attempts)")
        #expect(outcome.attempts.dropLast().allSatisfy { $0.exitCode == 1 && !$0.timedOut }, "\(outcome.attempts)")
        #expect(outcome.attempts.last?.exitCode == nil && outcome.attempts.last?.timedOut == true)
        #expect(elapsed >= 2.4 && elapsed < 4.5, "took \(elapsed) s")
    }

    @Test("The pause between attempts counts against the timeout too")
    func pauseCounts() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.script("/fail.sh", "exit 2")
        let started = Date()
        let outcome = ScriptRunner(executable: root.host("/fail.sh"), retries: 100, timeout: 2, retryPause: 1).run()
        #expect(!outcome.succeeded)
        #expect((2...3).contains(outcome.attempts.count), "\(outcome.attempts.count) attempts")
        #expect(Date().timeIntervalSince(started) < 3.5)
    }

    @Test("A timed-out script's whole process group is killed: its sleeping child too")
    func processGroupKilled() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        let childFile = root.host("/child.pid"), leaderFile = root.host("/leader.pid")
        try root.script("/spawner.sh", """
            echo $$ > "\(leaderFile)"
            sleep 300 &
            echo $! > "\(childFile)"
            sleep 300
            """)
        let outcome = ScriptRunner(executable: root.host("/spawner.sh"), timeout: 1).run()
        #expect(outcome.timedOut)
        let leader = try #require(pid_t(try String(contentsOfFile: leaderFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        let child = try #require(pid_t(try String(contentsOfFile: childFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(child, SIGKILL) }
        #expect(Processes.wait(upTo: 3) { !Processes.isAlive(child) }, "the script's child \(child) survived")
        #expect(!Processes.isAlive(leader))
        #expect(Processes.members(ofGroup: leader).isEmpty)
    }

    @Test("The output tail keeps the last 4 KiB of stdout and stderr together")
    func outputTail() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.script("/noisy.sh", """
            i=0; while [ $i -lt 500 ]; do echo "line $i of stdout padding padding"; i=$((i + 1)); done
            echo "to stderr" >&2
            echo END
            exit 3
            """)
        let outcome = ScriptRunner(executable: root.host("/noisy.sh"), timeout: 30).run()
        let attempt = try #require(outcome.attempts.first)
        #expect(attempt.exitCode == 3)
        #expect(attempt.outputTail.utf8.count <= ScriptRunner.tailBytes)
        #expect(attempt.outputTail.utf8.count > 4000)
        #expect(attempt.outputTail.hasSuffix("to stderr\nEND\n"))
        #expect(!attempt.outputTail.contains("line 0 of"))
    }

    @Test("Arguments and the environment reach the script; a signal shows as 128 + signal")
    func argumentsAndSignals() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.script("/args.sh", #"printf '%s|' "$@"; printf '%s' "$COFFRE_JOB"; kill -TERM $$"#)
        let outcome = ScriptRunner(executable: root.host("/args.sh"), arguments: ["a b", "c"], timeout: 30,
                                   environment: ["COFFRE_JOB": "job-9"]).run()
        #expect(outcome.attempts.first?.outputTail == "a b|c|job-9")
        #expect(outcome.attempts.first?.exitCode == 128 + SIGTERM)
        #expect(!outcome.succeeded)
    }

    @Test("A script that cannot be executed is a failed attempt, not a crash")
    func notExecutable() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.write("/plain.txt", "not a script", mode: 0o600)
        let outcome = ScriptRunner(executable: root.host("/plain.txt"), timeout: 5).run()
        #expect(!outcome.succeeded)
        #expect(outcome.attempts.count == 1)
        #expect(outcome.attempts.first?.exitCode == 127)
    }
}
