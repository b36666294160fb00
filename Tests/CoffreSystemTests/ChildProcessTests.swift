import CoffreCore
import CoffreSystem
import Foundation
import Testing

/// The one supervision loop: output capture, time limits, cancellation, process groups.
struct ChildProcessTests {
    static func shell(_ script: String, timeout: Duration? = nil) -> ChildProcess {
        ChildProcess(arguments: ["/bin/sh", "-c", script], timeout: timeout)
    }

    @Test func separateStreamsAndExitStatus() throws {
        let output = try Self.shell("printf out; printf err >&2; exit 3").runBlocking()
        #expect(output.termination == .exited(3))
        #expect(output.termination.exitCode == 3)
        #expect(String(decoding: output.stdout, as: UTF8.self) == "out")
        #expect(output.stderrTail() == "err")
    }

    @Test func mergedStreamKeepsTheOrderAndTheTail() throws {
        var child = Self.shell("echo one; echo two >&2; echo three; yes x | head -c 10000; echo end")
        child.output = .merged(.tail(100))
        let output = try child.runBlocking()
        let text = String(decoding: output.stdout, as: UTF8.self)
        #expect(output.stdout.count == 100)
        #expect(text.hasSuffix("x\nx\nend\n") && !text.contains("one"))
        #expect(output.stderr.isEmpty)

        child = Self.shell("echo one; echo two >&2; echo three")
        child.output = .merged(.tail(100))
        #expect(String(decoding: try child.runBlocking().stdout, as: UTF8.self) == "one\ntwo\nthree\n")
    }

    @Test func headCaptureDropsWhatIsBeyondItsLimit() throws {
        var child = Self.shell("head -c 300000 /dev/zero")
        child.output = .separate(stdout: .head(1000), stderr: .tail(10))
        let output = try child.runBlocking()
        #expect(output.termination == .exited(0))
        #expect(output.stdout.count == 1000)
    }

    @Test func environmentIsAddedToOurs() throws {
        var child = Self.shell("printf \"$COFFRE_TEST_VALUE:$HOME\"")
        child.environment = ["COFFRE_TEST_VALUE": "seen"]
        let text = String(decoding: try child.runBlocking().stdout, as: UTF8.self)
        #expect(text == "seen:\(ProcessInfo.processInfo.environment["HOME"] ?? "")")
    }

    @Test func aTimeoutKillsTheWholeGroup() throws {
        // The grandchild would hold the pipe open for 30 s if only the shell were killed.
        let marker = NSTemporaryDirectory() + "coffre-grandchild-\(UUID().uuidString)"
        let child = Self.shell("(sleep 30; touch \(marker)) & echo started; sleep 30", timeout: .milliseconds(300))
        let started = Date()
        do {
            _ = try child.runBlocking()
            Issue.record("the command was not stopped")
        } catch .timedOut(let output) {
            #expect(String(decoding: output.stdout, as: UTF8.self) == "started\n")
            #expect(output.termination == .signaled(9))
        } catch {
            Issue.record("unexpected \(error)")
        }
        // Killed, not waited for: well below the 30 s of either sleep.
        #expect(Date().timeIntervalSince(started) < 20)
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test func aProgramThatCannotStartSaysWhy() {
        let child = ChildProcess(arguments: ["/nonexistent/coffre-no-such-program"])
        do {
            _ = try child.runBlocking()
            Issue.record("it started")
        } catch .couldNotStart(let code) {
            #expect(code == Errno.noSuchFile)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func aProgramBusyForAMomentStartsAndOneStillBeingWrittenSaysWhy() throws {
        // ETXTBSY while the script is open for writing (as in a child another thread forks
        // between its fork and its exec): the spawn tries again for a moment.
        let path = NSTemporaryDirectory() + "coffre-busy-\(UUID().uuidString).sh"
        defer { unlink(path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o700)
        #expect(fd >= 0)
        let script = Array("#!/bin/sh\necho ran\n".utf8)
        #expect(write(fd, script, script.count) == script.count)
        let closing = Thread { usleep(30_000); close(fd) }
        closing.start()
        let output = try ChildProcess(arguments: [path]).runBlocking()
        #expect(output.termination == .exited(0) && String(decoding: output.stdout, as: UTF8.self) == "ran\n")

        // Still open for writing after the retries: the error names the reason.
        let held = open(path, O_WRONLY | O_CLOEXEC)
        defer { close(held) }
        do {
            _ = try ChildProcess(arguments: [path]).runBlocking()
            Issue.record("it started while its file was open for writing")
        } catch .couldNotStart(let code) {
            #expect(code == ETXTBSY)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func cancellingTheTaskKillsTheChild() async throws {
        let marker = NSTemporaryDirectory() + "coffre-cancelled-\(UUID().uuidString)"
        let task = Task { try await Self.shell("sleep 30; touch \(marker)").run() }
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        let result = await task.result
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test func descendantsHoldingThePipeAreWaitedForOnlyUntilTheGrace() throws {
        // The shell exits at once; its background child keeps stdout open for 30 s.
        var child = Self.shell("echo before; (sleep 30) & exit 0")
        child.drainGrace = .milliseconds(100)
        let output = try child.runBlocking()
        #expect(output.termination == .exited(0))
        #expect(String(decoding: output.stdout, as: UTF8.self) == "before\n")
        #expect(output.seconds < 20)
    }

    @Test func tailTextDropsACharacterCutInTwo() {
        let bytes = Array("é-end".utf8)  // é is two bytes: keeping 5 cuts it
        #expect(ChildProcess.Output.text(bytes, last: 5) == "-end")
        #expect(ChildProcess.Output.text(bytes, last: 6) == "é-end")
    }
}
