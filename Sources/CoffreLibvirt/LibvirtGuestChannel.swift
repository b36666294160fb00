#if Libvirt
import CoffreCore
import Foundation

/// The extension inside a libvirt guest: `coffre-agent prepare|release` run through
/// qemu-guest-agent's `guest-exec` (docs/agent-protocol.md), its report read from stdout.
struct AgentGuestChannel: GuestChannel {
    let domain: LibvirtDomain
    let vm: VMKey
    let agentPath: String
    let timeoutSeconds: Double

    func prepare(job: String, diskCount: Int) async throws -> AgentReport {
        try await run(["prepare", "--job", job, "--disks", String(diskCount)])
    }

    func release(job: String) async throws -> AgentReport {
        try await run(["release", "--job", job])
    }

    private func run(_ arguments: [String]) async throws -> AgentReport {
        let verb = arguments[0]
        let result = try await domain.guestExec(path: agentPath, arguments: arguments, timeoutSeconds: timeoutSeconds)
        guard result.exitCode == 0 else {
            throw CoffreError(.guestAgentError,
                              "coffre-agent \(verb) in \(vm) exited with \(result.exitCode.map(String.init) ?? "signal \(result.signal ?? 0)"): \(result.errorOutput.suffix(300))",
                              workaround: "Run `\(agentPath) \(verb) --job …` in the guest to see the full message; its log is /var/log/coffre/agent.log")
        }
        return try AgentReport.decode(result.stdout, verb: verb, vm: vm)
    }
}

/// A guest with qemu-guest-agent but without coffre-agent: file systems frozen and thawed
/// through `guest-fsfreeze-*` (file-system-consistent points, no scripts).
struct FreezeGuestChannel: GuestChannel {
    let domain: LibvirtDomain
    let agentVersion: String

    func prepare(job: String, diskCount: Int) async throws -> AgentReport {
        let count = try await domain.guestFSFreeze()
        return AgentReport(command: "prepare", job: job, agentVersion: agentVersion, frozen: count > 0,
                           frozenFileSystems: count > 0 ? ["\(count) file systems (guest-fsfreeze-freeze)"] : [],
                           consistency: count > 0 ? .fileSystemConsistent : .crashConsistent)
    }

    func release(job: String) async throws -> AgentReport {
        _ = try await domain.guestFSThaw()
        return AgentReport(command: "release", job: job, agentVersion: agentVersion)
    }
}
#endif
