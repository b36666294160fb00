import ArgumentParser
import CoffreCore
import CoffreExtension
import CoffreSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `coffre-agent`: the in-guest extension. Every command prints one `AgentReport` JSON
/// document on stdout and exits 0; see docs/agent-protocol.md.
@main
struct AgentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coffre-agent",
        abstract: "Coffre's in-guest extension: pre/post scripts and file-system freeze around a snapshot.",
        discussion: "Prints one JSON document (protocol version \(AgentReport.protocolVersion)) on stdout; see docs/agent-protocol.md.",
        version: "coffre-agent " + BuildInfo.versionLine(Agent.version),
        subcommands: [Prepare.self, Release.self, Status.self, Version.self, Watchdog.self]
    )
}

/// Options every command shares.
struct GuestOptions: ParsableArguments {
    @Option(help: "Prefix for every guest path (config, log, state, scripts, mounts). Default: $COFFRE_AGENT_ROOT, else /.")
    var root: String?

    /// The agent these options describe.
    func agent(thawAfter: Double? = nil, noFreeze: Bool = false) -> Agent {
        let environment = ProcessInfo.processInfo.environment
        let root = root ?? environment["COFFRE_AGENT_ROOT"] ?? "/"
        let hold = environment["COFFRE_AGENT_HOLD_AFTER_FREEZE_SECONDS"].flatMap(Double.init) ?? 0
        return Agent(configuration: .init(
            paths: GuestPaths(root: root), thawAfterSeconds: thawAfter, freezeDisabled: noFreeze,
            holdAfterFreezeSeconds: hold))
    }
}

/// Job ids travel in command lines and file contents: keep them plain.
func validateJob(_ job: String) throws {
    let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")
    guard (1...128).contains(job.count), job.unicodeScalars.allSatisfy(allowed.contains) else {
        throw ValidationError("--job must be 1 to 128 characters from A-Z a-z 0-9 . _ : -")
    }
}

/// Prints the report; the exit status says only whether that worked.
func emit(_ report: AgentReport) throws {
    let data: Data
    do {
        data = try AgentReport.makeEncoder().encode(report)
    } catch {
        FileHandle.standardError.write(Data("coffre-agent: cannot encode the report: \(error)\n".utf8))
        throw ExitCode(1)
    }
    do {
        try FileHandle.standardOutput.write(contentsOf: data + Data("\n".utf8))
    } catch {
        throw ExitCode(1)
    }
}

extension AgentCommand {
    struct Prepare: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the pre-script, then freeze file systems; start the thaw watchdog.")

        @Option(help: "The engine's job id.") var job: String
        @Option(help: "The VM's disk count (a single-disk VM falls back to crash-consistent); 0 = unknown.") var disks: Int = 0
        @Option(name: .customLong("thaw-after"), help: "Seconds after which the watchdog thaws by itself (default: config's thawDeadlineSeconds, else 60).")
        var thawAfter: Double?
        @Flag(name: .customLong("no-freeze"), help: "Run the scripts but do not freeze.") var noFreeze = false
        @OptionGroup var guest: GuestOptions

        func validate() throws {
            try validateJob(job)
            guard disks >= 0 else { throw ValidationError("--disks cannot be negative") }
            if let thawAfter, !(thawAfter > 0) { throw ValidationError("--thaw-after must be a positive number of seconds") }
        }

        func run() throws {
            ignoreSIGPIPE()
            try emit(guest.agent(thawAfter: thawAfter, noFreeze: noFreeze).prepare(job: job, disks: disks))
        }
    }

    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Thaw file systems, then run the post-script; stop the watchdog.")

        @Option(help: "The job id given to prepare.") var job: String
        @OptionGroup var guest: GuestOptions

        func validate() throws { try validateJob(job) }

        func run() throws {
            ignoreSIGPIPE()
            try emit(guest.agent().release(job: job))
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Report the last job's state; changes nothing.")
        @OptionGroup var guest: GuestOptions

        func run() throws {
            ignoreSIGPIPE()
            try emit(guest.agent().status())
        }
    }

    struct Version: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Report the agent's version.")
        /// Accepted so a caller can pass the same options to every command; the answer does not depend on it.
        @OptionGroup var guest: GuestOptions

        func run() throws {
            ignoreSIGPIPE()
            try emit(guest.agent().version())
        }
    }

    struct Watchdog: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Internal: started by prepare; releases the job by itself at the deadline.", shouldDisplay: false)

        @Option(help: "The job to release.") var job: String
        @Option(name: .customLong("after-ms"), help: "Milliseconds to wait.") var afterMilliseconds: Int
        @OptionGroup var guest: GuestOptions

        func run() throws {
            guest.agent().runWatchdog(job: job, after: Double(afterMilliseconds) / 1000)
        }
    }
}

/// A caller that stops reading must not kill the agent halfway (scripts get default handling back).
func ignoreSIGPIPE() { _ = signal(SIGPIPE, SIG_IGN) }
