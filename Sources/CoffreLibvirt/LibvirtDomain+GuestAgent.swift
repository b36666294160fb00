#if Libvirt
import CLibvirt
import CoffreCore
import CoffreSystem
public import Foundation

/// qemu-guest-agent through libvirt (`virDomainQemuAgentCommand`): the way into a guest.
extension LibvirtDomain {
    /// Sends one raw guest agent command and returns the agent's JSON reply.
    /// - Parameters:
    ///   - json: the command, e.g. `{"execute":"guest-ping"}`.
    ///   - timeoutSeconds: how long to wait for the answer; the agent's sync adds its own.
    /// - Throws: `GuestAgentUnavailable` (no channel, agent silent), `GuestAgentError` (the
    ///   agent answered with an error), `VMNotRunning`.
    public func agentCommand(_ json: String, timeoutSeconds: Int32 = 30) async throws -> String {
        try await runOnThread { _ in try self.agentCommandNow(json, timeoutSeconds: timeoutSeconds, command: "a command") }
    }

    func agentCommandNow(_ json: String, timeoutSeconds: Int32, command: String) throws -> String {
        guard let reply = virDomainQemuAgentCommand(pointer, json, timeoutSeconds, 0) else {
            throw lastLibvirtError("run \(command) in \(name)", domain: name, agentCommand: command)
        }
        defer { free(reply) }
        return String(cString: reply)
    }

    /// Runs `execute` with `arguments` and returns the reply's `return` value.
    func agentCall(_ execute: String, _ arguments: [String: Any] = [:], timeoutSeconds: Int32 = 30) throws -> Any {
        var command: [String: Any] = ["execute": execute]
        if !arguments.isEmpty { command["arguments"] = arguments }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: command), as: UTF8.self)
        let reply = try agentCommandNow(json, timeoutSeconds: timeoutSeconds, command: execute)
        guard let object = try? JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any],
              let value = object["return"]
        else { throw CoffreError.guestAgentFailed(name, command: execute, detail: "unexpected reply \(reply.prefix(200))") }
        return value
    }

    /// Whether the agent answers `guest-ping` within `timeoutSeconds`.
    /// - Throws: why it does not (`GuestAgentUnavailable`, `VMNotRunning`).
    public func guestPing(timeoutSeconds: Int32 = 2) async throws {
        try await runOnThread { _ in _ = try self.agentCall("guest-ping", timeoutSeconds: timeoutSeconds) }
    }

    /// The agent's version and enabled commands (`guest-info`).
    public func guestInfo(timeoutSeconds: Int32 = 5) async throws -> GuestAgentInfo {
        try await runOnThread { _ in try self.guestInfoNow(timeoutSeconds: timeoutSeconds) }
    }

    func guestInfoNow(timeoutSeconds: Int32 = 5) throws -> GuestAgentInfo {
        let info = try agentCall("guest-info", timeoutSeconds: timeoutSeconds) as? [String: Any] ?? [:]
        let commands = (info["supported_commands"] as? [[String: Any]] ?? []).compactMap { command -> String? in
            (command["enabled"] as? Bool ?? false) ? command["name"] as? String : nil
        }
        return GuestAgentInfo(version: info["version"] as? String ?? "unknown", enabledCommands: Set(commands))
    }

    /// The guest's OS (`guest-get-osinfo`); nil when the agent does not have the command or
    /// has it disabled.
    public func guestOSInfo(timeoutSeconds: Int32 = 5) async throws -> GuestOSInfo? {
        try await runOnThread { _ in try self.guestOSInfoNow(timeoutSeconds: timeoutSeconds) }
    }

    func guestOSInfoNow(timeoutSeconds: Int32 = 5) throws -> GuestOSInfo? {
        let value: Any
        do {
            value = try agentCall("guest-get-osinfo", timeoutSeconds: timeoutSeconds)
        } catch let error as CoffreError where error.code == .guestAgentError
            && ["not been found", "CommandNotFound", "disabled", "not supported"].contains(where: error.message.contains) {
            return nil
        }
        let info = value as? [String: Any] ?? [:]
        return GuestOSInfo(
            id: info["id"] as? String, name: info["name"] as? String, prettyName: info["pretty-name"] as? String,
            version: info["version"] as? String, versionID: info["version-id"] as? String,
            kernelRelease: info["kernel-release"] as? String, machine: info["machine"] as? String)
    }

    /// Runs a program in the guest (`guest-exec` with captured output) and waits for it.
    /// - Parameters:
    ///   - path: the program, e.g. `/bin/sh`; the agent does not search `PATH` reliably.
    ///   - arguments: its arguments, without the program name.
    ///   - input: bytes for its standard input.
    ///   - timeoutSeconds: how long to wait for it to exit; the process is not killed after.
    /// - Returns: exit status and output; a non-zero exit status is not an error.
    public func guestExec(
        path: String, arguments: [String] = [], input: Data? = nil, timeoutSeconds: Double = 300
    ) async throws -> GuestExecResult {
        try await runOnThread { flag in
            try self.guestExecNow(path: path, arguments: arguments, input: input, timeoutSeconds: timeoutSeconds, flag: flag)
        }
    }

    func guestExecNow(
        path: String, arguments: [String], input: Data? = nil, timeoutSeconds: Double = 300, flag: CancellationFlag? = nil
    ) throws -> GuestExecResult {
        var request: [String: Any] = ["path": path, "arg": arguments, "capture-output": true]
        if let input { request["input-data"] = input.base64EncodedString() }
        guard let pid = (try agentCall("guest-exec", request) as? [String: Any])?["pid"] as? Int else {
            throw CoffreError.guestAgentFailed(name, command: "guest-exec", detail: "no pid in the reply")
        }
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeoutSeconds * 1000))
        var pause = 0.005  // seconds; at most 20 ms between polls: the end of a 300 ms command is seen within 20 ms
        while true {
            let status = try agentCall("guest-exec-status", ["pid": pid]) as? [String: Any] ?? [:]
            if status["exited"] as? Bool == true {
                func decoded(_ key: String) -> Data { (status[key] as? String).flatMap { Data(base64Encoded: $0) } ?? Data() }
                return GuestExecResult(
                    exitCode: (status["exitcode"] as? Int).map(Int32.init), signal: (status["signal"] as? Int).map(Int32.init),
                    stdout: decoded("out-data"), stderr: decoded("err-data"),
                    truncated: status["out-truncated"] as? Bool == true || status["err-truncated"] as? Bool == true)
            }
            if flag?.isSet == true { throw CoffreError.cancelled() }
            guard ContinuousClock.now < deadline else {
                throw CoffreError.guestAgentFailed(name, command: "guest-exec",
                                                   detail: "\(path) still runs after \(timeoutSeconds) s (pid \(pid) in the guest)")
            }
            Thread.sleep(forTimeInterval: pause)
            pause = min(pause * 2, 0.02)
        }
    }

    /// Runs `command` with the guest's `/bin/sh -c`.
    public func guestShell(_ command: String, timeoutSeconds: Double = 300) async throws -> GuestExecResult {
        try await guestExec(path: "/bin/sh", arguments: ["-c", command], timeoutSeconds: timeoutSeconds)
    }
}
#endif
