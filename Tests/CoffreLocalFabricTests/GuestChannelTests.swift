import CoffreCore
import CoffreSystem
import CoffreTesting
import Foundation
import Testing

@testable import CoffreLocalFabric

/// The local fabric's extension: the real `coffre-agent` for the happy path, small shell
/// scripts standing in for a broken agent.
@Suite struct GuestChannelTests {
    let web = VMKey(cloudService: "prod", name: "web")

    /// The `coffre-agent` built next to the test bundle (`swift build --build-tests` builds it).
    static func realAgent() throws -> String {
        let path = LocalFabric.Configuration.defaultAgentPath()
        try #require(path.hasPrefix("/"), "coffre-agent was not built next to the tests (looked beside \(Bundle.main.executablePath ?? "?"))")
        return path
    }

    /// An executable script in `folder` that stands in for coffre-agent.
    func fakeAgent(_ folder: String, _ body: String) throws -> [String] {
        let path = folder + "/fake-agent.sh"
        // O_CLOEXEC: a child of a parallel test must not hold the script open (ETXTBSY).
        try FileIO.writeFileAtomically(path, Array("#!/bin/sh\n\(body)\n".utf8), mode: 0o755)
        return [path]
    }

    @Test func registrationRunsTheRealAgentAndRecordsItsVersion() async throws {
        let f = try FabricFolder(agent: [try Self.realAgent()])
        let folder = try f.addSimpleVM("prod/web", size: 1 << 20)
        #expect(try await f.fabric.guestChannel(for: web) == nil)  // not registered yet

        let version = try await f.fabric.installExtension(on: web)
        #expect(!version.isEmpty)
        let recorded = try String(contentsOfFile: folder + "/guest/var/lib/coffre/extension-version", encoding: .utf8)
        #expect(recorded == version + "\n")
        #expect(try await f.fabric.vm(web)?.extensionVersion == version)

        // A guest without configuration or file systems to freeze: no scripts, nothing frozen.
        let channel = try #require(try await f.fabric.guestChannel(for: web))
        let prepared = try await channel.prepare(job: "job-1", diskCount: 1)
        #expect(prepared.command == "prepare" && prepared.job == "job-1" && prepared.ok)
        let released = try await channel.release(job: "job-1")
        #expect(released.command == "release" && released.ok && !released.frozen)
        // The agent wrote its log under the guest root, not in the host's /var/log.
        #expect(FileManager.default.fileExists(atPath: folder + "/guest/var/log/coffre"))
    }

    @Test func aVMWithoutAgentHasNoChannel() async throws {
        let f = try FabricFolder(agent: [try Self.realAgent()])
        try f.addSimpleVM("prod/web", agent: nil)
        #expect(try await f.fabric.guestChannel(for: web) == nil)
    }

    @Test func missingAgentProgramIsUnavailable() async throws {
        let f = try FabricFolder(agent: ["/nonexistent/coffre-agent"])
        try f.addSimpleVM("prod/web")
        await expectCode(.guestAgentUnavailable) { _ = try await f.fabric.installExtension(on: web) }
    }

    @Test func failingOrBabblingAgentsAreErrorsNamingTheVM() async throws {
        let f = try FabricFolder()
        try f.addSimpleVM("prod/web")
        let cases: [(String, String)] = [
            ("echo 'disk on fire' >&2; exit 3", "exited with status 3: disk on fire"),
            ("echo 'hello'", "not a protocol report"),
            (#"echo '{"protocolVersion":2,"command":"version","agentVersion":"9","ok":true,"frozen":false,"frozenFileSystems":[],"scripts":[],"errors":[]}'"#,
             "protocol version 2"),
        ]
        for (script, message) in cases {
            let agent = try fakeAgent(f.root, script)
            var configuration = f.fabric.configuration
            configuration.agentCommand = agent
            let fabric = LocalFabric(configuration: configuration)
            do {
                _ = try await fabric.installExtension(on: web)
                Issue.record("no error for: \(script)")
            } catch let error as CoffreError {
                #expect(error.code == .guestAgentError)
                #expect(error.message.contains(message) && error.message.contains("prod/web"), "\(error.message)")
            }
        }
    }

    @Test func anAgentThatHangsIsKilledWithWhatItStarted() async throws {
        let f = try FabricFolder(agentTimeout: .milliseconds(300))
        try f.addSimpleVM("prod/web")
        let marker = f.root + "/child.pid"
        let agent = try fakeAgent(f.root, "sleep 120 & echo $! > \(marker); wait")
        var configuration = f.fabric.configuration
        configuration.agentCommand = agent
        let started = ContinuousClock.now
        await expectCode(.guestAgentTimeout) { _ = try await LocalFabric(configuration: configuration).installExtension(on: web) }
        // Not a timing assertion: an agent that was not killed returns only when its child's
        // 120 s sleep ends. The margin is wide because a loaded machine can delay the timeout.
        #expect(ContinuousClock.now - started < .seconds(90))
        let child = try #require(Int32(try String(contentsOfFile: marker, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        usleep(100_000)
        #expect(!isRunning(child), "the agent's child \(child) survived")
    }

    /// Alive and not a zombie waiting for a parent (in a container, PID 1 may never reap it).
    func isRunning(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }
}
