#if Libvirt
import CoffreCore
import Foundation
import Testing
@testable import CoffreLibvirt

/// qemu-guest-agent in the harness's running guest.
@Suite(.serialized, .enabled(if: TestHost.live, "needs `scripts/libvirt-harness up`"))
struct GuestAgentTests {
    @Test func infoAndOSInfo() async throws {
        let domain = try await TestHost.running()
        try await domain.guestPing()
        let info = try await domain.guestInfo()
        #expect(info.version.hasPrefix("7."))
        #expect(info.enabledCommands.isSuperset(of: ["guest-exec", "guest-file-write", "guest-fsfreeze-freeze"]))
        let os = try #require(try await domain.guestOSInfo())
        #expect(os.id == "coffre-tiny")  // the harness's /etc/os-release
        #expect(os.osType == "linux")
        #expect(os.kernelRelease?.contains("cloud-amd64") == true)
        let raw = try await domain.agentCommand(#"{"execute":"guest-ping"}"#)
        #expect(raw == #"{"return":{}}"#)
    }

    @Test func execReturnsOutputAndExitCodes() async throws {
        let domain = try await TestHost.running()
        let result = try await domain.guestShell("echo hello; echo oops >&2; exit 7")
        #expect(result.exitCode == 7)
        #expect(result.output == "hello\n")
        #expect(result.errorOutput == "oops\n")
        let ok = try await domain.guestExec(path: "/bin/cat", input: Data("piped in".utf8))
        #expect(ok.exitCode == 0)
        #expect(ok.output == "piped in")
        let killed = try await domain.guestShell("kill -9 $$")
        #expect(killed.exitCode == nil)
        #expect(killed.signal == 9)
    }

    @Test func execOfAMissingProgramIsAnAgentError() async throws {
        let domain = try await TestHost.running()
        let error = try await #require(throws: CoffreError.self) { try await domain.guestExec(path: "/no/such/program") }
        #expect(error.code == .guestAgentError)
    }

    @Test func writeFileRoundTripsOneMebibyte() async throws {
        let domain = try await TestHost.running()
        let data = randomBytes(count: 1 << 20, seed: 0xC0FF_EE)
        let path = "/tmp/coffre-roundtrip.bin"
        try await domain.guestWriteFile(path: path, data: data, mode: 0o600)
        let sum = try await domain.guestShell("sha256sum \(path); stat -c %a:%s \(path)")
        #expect(sum.exitCode == 0)
        let lines = sum.output.split(separator: "\n")
        #expect(lines.first?.split(separator: " ").first.map(String.init) == (try hostSHA256(data)))
        #expect(lines.last == "600:\(1 << 20)")
        #expect(try await domain.guestReadFile(path: path) == data)
        _ = try await domain.guestShell("rm -f \(path)")
    }

    @Test func readingAMissingFileIsAnAgentError() async throws {
        let domain = try await TestHost.running()
        let error = try await #require(throws: CoffreError.self) { try await domain.guestReadFile(path: "/no/such/file") }
        #expect(error.code == .guestAgentError)
    }

    @Test func freezeAndThaw() async throws {
        let domain = try await TestHost.running()
        #expect(try await domain.guestFSIsFrozen() == false)
        let frozenInside = try await domain.withFrozenGuest {
            try await domain.guestFSIsFrozen()
        }
        #expect(frozenInside)
        #expect(try await domain.guestFSIsFrozen() == false)
        // Thawed also when the body fails.
        struct Boom: Error {}
        await #expect(throws: Boom.self) { try await domain.withFrozenGuest { throw Boom() } }
        #expect(try await domain.guestFSIsFrozen() == false)
        #expect(try await domain.guestFSFreeze() == 1)  // /mnt (ext4 on vdb); the rootfs is not freezable
        #expect(try await domain.guestFSThaw() == 1)
        #expect(try await domain.guestShell("echo x > /mnt/after-thaw && cat /mnt/after-thaw").output == "x\n")
    }

    /// The extension's way in: the statically linked coffre-agent, pushed and run in the guest.
    @Test(.enabled(if: TestHost.staticAgent != nil || TestHost.required, "build coffre-agent with scripts/build-agent first"))
    func staticCoffreAgentRunsInTheGuest() async throws {
        let domain = try await TestHost.running()
        let agent = try #require(TestHost.staticAgent)
        let clock = ContinuousClock()
        let start = clock.now
        let bytes = try await domain.guestUpload(file: agent, to: "/usr/local/bin/coffre-agent")
        let elapsed = clock.now - start
        print("pushed coffre-agent: \(bytes) bytes in \(elapsed)")
        let version = try await domain.guestExec(path: "/usr/local/bin/coffre-agent", arguments: ["version"])
        #expect(version.exitCode == 0, "\(version.errorOutput)")
        let report = try JSONDecoder().decode(AgentReport.self, from: version.stdout)
        #expect(report.ok)
        #expect(report.command == "version")
    }
}
#endif
