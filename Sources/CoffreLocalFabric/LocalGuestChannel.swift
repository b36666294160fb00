import CoffreCore
import CoffreSystem
import Foundation

/// The extension of a local VM: `coffre-agent` run as a subprocess with the VM's guest folder
/// as its root (docs/agent-protocol.md).
struct LocalGuestChannel: GuestChannel {
    let vm: VMKey
    let guestRoot: String
    let command: [String]
    let timeout: Duration

    func prepare(job: String, diskCount: Int) async throws -> AgentReport {
        try await run(["prepare", "--job", job, "--disks", String(diskCount)], job: job)
    }

    func release(job: String) async throws -> AgentReport {
        try await run(["release", "--job", job], job: job)
    }

    /// Runs one agent command and decodes its report. Throws when the agent cannot be
    /// started, outlives `timeout`, fails, or prints something that is not a report.
    func run(_ arguments: [String], job: String?) async throws -> AgentReport {
        let verb = arguments[0]
        let process = ChildProcess(arguments: command + arguments + ["--root", guestRoot], timeout: timeout)
        let output: ChildProcess.Output
        do {
            output = try await process.run()
        } catch ChildProcess.Failure.couldNotStart(let code) {
            throw CoffreError(.guestAgentUnavailable,
                              "Cannot start coffre-agent (\(command[0])) for \(vm): \(errnoDescription(code))",
                              workaround: "Build it next to coffre (`swift build --product coffre-agent`), put it on PATH, or reinstall the coffre package (/usr/lib/coffre/coffre-agent)")
        } catch ChildProcess.Failure.timedOut {
            throw CoffreError(.guestAgentTimeout,
                              "coffre-agent \(verb) for \(vm) did not answer within \(formatSeconds(timeout.inSeconds)); it was stopped",
                              workaround: "Check the VM's pre/post scripts: their timeoutInSeconds must fit in the agent timeout")
        }
        guard output.termination == .exited(0) else {
            throw CoffreError(.guestAgentError,
                              "coffre-agent \(verb) for \(vm) \(output.termination): \(output.stderrTail())",
                              workaround: "Run the same command by hand in the guest to see the full message; its log is under var/log/coffre/")
        }
        return try AgentReport.decode(Data(output.stdout), verb: verb, vm: vm)
    }
}
