import ArgumentParser
import CoffreCore
import CoffreEngine
import Foundation
import Logging
import ServiceLifecycle

struct DiscoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "discover", abstract: "Ask every fabric for its VMs (a Discovery job). Run it first, and again after adding VMs.")
    @OptionGroup var options: ConnectOptions
    @Flag(help: "Print the job as JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let plane = try await options.connect()
            _ = try await JobOutput.wait(plane, try await plane.discover(), json: json)
        }
    }
}

struct VMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm", abstract: "VMs found by discovery.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List discovered VMs with their registration and protection.",
            discussion: "--unregistered lists only the VMs `coffre register` accepts: present, not registered, in the vault's region.")
        @OptionGroup var options: ConnectOptions
        @Flag(help: "Only VMs that can be registered.") var unregistered = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let views = try await options.connect().vms(unregistered: unregistered)
                if json { return try printJSON(views) }
                print(pad("VM (cloudService/name)", 30) + pad("region", 10) + pad("power", 9) + pad("disks", 6, right: true)
                      + "  " + pad("agent", 8) + pad("registration", 14) + "protection")
                for view in views {
                    let record = view.vm
                    var registration = record.registration.rawValue
                    if record.presence == .vanished { registration += " (vanished)" }
                    print(pad(record.key.description, 30) + pad(record.vm.region, 10) + pad(record.vm.powerState.rawValue, 9)
                          + pad("\(record.vm.disks.count)", 6, right: true) + "  " + pad(record.vm.agentVersion ?? "none", 8)
                          + pad(registration, 14)
                          + (view.protection.map { "\($0), policy \(view.policy ?? "-")" } ?? "-"))
                    if record.registration == .failed, let error = record.registrationError { print("    \(error)") }
                }
            }
        }
    }
}

struct RegisterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "register", abstract: "Register VMs with the vault: one Register job per VM, which installs the extension.",
        discussion: "Example: coffre register web01 prod/db01   (name a VM as cloudService/name when two share a name)")
    @OptionGroup var options: ConnectOptions
    @Flag(help: "Print JSON.") var json = false
    @Argument(help: "VMs, as name or cloudService/name.") var vms: [String]

    func run() async throws {
        try await reportingErrors {
            let plane = try await options.connect()
            try await JobOutput.waitAll(plane, try await plane.register(vms), json: json)
        }
    }
}

struct ProtectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "protect", abstract: "Protect registered VMs with a policy: one ConfigureProtection job per VM.",
        discussion: "Example: coffre protect web01 db01 --policy nightly. The VMs are 'Protected (pending initial backup)' until their first point.")
    @OptionGroup var options: ConnectOptions
    @Option(help: "The policy.") var policy: String
    @Flag(help: "Move VMs that are already protected to this policy.") var change = false
    @Flag(help: "Print JSON.") var json = false
    @Argument(help: "VMs, as name or cloudService/name.") var vms: [String]

    func run() async throws {
        try await reportingErrors {
            let plane = try await options.connect()
            try await JobOutput.waitAll(plane, try await plane.protect(vms, policy: policy, change: change), json: json)
        }
    }
}

struct DashboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard", abstract: "Protected VMs and the jobs of the last 24 hours.")
    @OptionGroup var options: ConnectOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let board = try await options.connect().dashboard()
            if json { return try printJSON(board) }
            print("Protected VMs: \(board.protectedVMs) (\(board.pendingInitialBackup) pending initial backup)")
            if board.stoppedProtection + board.softDeleted > 0 {
                print("Protection stopped: \(board.stoppedProtection), soft deleted: \(board.softDeleted)")
            }
            print("Jobs, last 24 h: \(board.jobsSucceeded) succeeded, \(board.jobsFailed) failed, \(board.jobsInProgress) in progress, \(board.jobsQueued) queued, \(board.jobsCancelled) cancelled")
            print("  details: coffre jobs --since 24h --status failed")
        }
    }
}

struct NodesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nodes",
        abstract: "The coffre serve nodes sharing the catalog: which one leads, which are alive.",
        discussion: "On the embedded SQLite catalog, this installation alone. See docs/control-plane.md.")
    @OptionGroup var options: ConnectOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let nodes = try await options.connect().nodes()
            if json { return try printJSON(nodes) }
            for node in nodes {
                let role = node.leader ? "leader" : (node.alive ? "alive" : "silent")
                let address = node.address.isEmpty ? "-" : node.address
                print("\(node.id)  \(address)  \(role)  \(node.runningJobs) running  heartbeat \(Engine.instant(node.lastHeartbeat))  \(node.version)")
            }
        }
    }
}

struct SchedulerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Run scheduled backups and retention cleanup: once (--once), or until stopped.",
        discussion: "Missed schedule slots run once, not once per slot. `coffre serve` (when available) runs the same loop.")
    @OptionGroup var app: AppOptions
    @Flag(help: "One pass: start due backups, wait for them, apply retention, exit.") var once = false

    func run() async throws {
        try await reportingErrors {
            let engine = try await app.makeEngine()
            guard once else { return try await runUntilStopped(engine) }
            // Nodes sharing a PostgreSQL catalog: the pass is the leader's work.
            guard await engine.claimLeadership() else {
                print("another node leads the scheduler (coffre nodes): nothing done here")
                return
            }
            do {
                try await pass(engine)
            } catch {
                await engine.resign()
                throw error
            }
            await engine.resign()
        }
    }

    /// Starts due backups, waits for them, applies retention; exit code 1 when a backup failed.
    private func pass(_ engine: Engine) async throws {
        let jobs = try await engine.runDueBackups()
        await engine.claim(jobs)
        var failed = false
        for job in jobs {
            let final = try await engine.wait(for: job.id)
            print(JobOutput.line(final))
            failed = failed || final.status != .succeeded
        }
        let removed = try await engine.runRetention()
        try await engine.expireOrphans()
        print("retention: \(removed.count) points removed")
        if failed { throw ExitCode(1) }
    }

    /// Runs the engine's loop until SIGTERM or SIGINT; running jobs are then cancelled and
    /// recorded as Cancelled before the process exits.
    private func runUntilStopped(_ engine: Engine) async throws {
        let logger = Logger(label: "coffre.scheduler")
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: engine)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        print("scheduler running (\(engine.configuration.tickInterval) between passes); stop with Ctrl-C or SIGTERM")
        try await group.run()
    }
}
