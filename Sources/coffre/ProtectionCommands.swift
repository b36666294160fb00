import ArgumentParser
import CoffreCore
import CoffreEngine
import Foundation

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Back up a protected VM now (on-demand): full the first time, incremental after.",
        discussion: "Example: coffre backup web01 --retain-until 2027-01-31")
    @OptionGroup var options: ConnectOptions
    @Argument(help: "The VM, as name or cloudService/name.") var vm: String
    @Option(help: "Keep this point until DATE (YYYY-MM-DD; default: 30 days).") var retainUntil: String?
    @Flag(help: "No progress bar.") var noProgress = false
    @Flag(help: "Print the job as JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let until = try retainUntil.map(DateText.until)
            let plane = try await options.connect()
            let job = try await plane.backupNow(vm, retainUntil: until)
            _ = try await JobOutput.wait(plane, job, progress: !noProgress, json: json)
        }
    }
}

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "List jobs, newest first.",
        discussion: "Example: coffre jobs --type backup --status failed --since 24h")
    @OptionGroup var options: ConnectOptions
    @Option(help: "Discovery, Register, ConfigureProtection, Backup, Restore, StopProtection, DeleteBackupData, Undelete, Verify.") var type: String?
    @Option(help: "Queued, InProgress, Succeeded, Failed, Cancelled.") var status: String?
    @Option(help: "Only jobs of this VM.") var vm: String?
    @Option(help: "Only jobs started since: 24h, 7d, or a date.") var since: String?
    @Option(help: "At most N jobs.") var limit: Int?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let query = JobQuery(type: type, status: status, vm: vm, since: since, limit: limit)
            let jobs = try await options.connect().jobs(query)
            if json { return try printJSON(jobs) }
            print(pad("job", 34) + pad("type", 20) + pad("VM", 24) + pad("status", 11) + pad("started (UTC)", 21) + "duration")
            for job in jobs {
                let duration = job.endedAt.map { JobOutput.duration($0.timeIntervalSince(job.startedAt)) } ?? "running"
                print(pad(job.id, 34) + pad(job.type.rawValue, 20) + pad(job.vm?.description ?? "-", 24)
                      + pad(job.status.rawValue, 11) + pad(String(Engine.instant(job.startedAt).prefix(19)), 21) + duration)
                if let error = job.error { print("    \(error)") }
            }
        }
    }
}

struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job", abstract: "One job: its steps, or cancel it.", subcommands: [Show.self, Cancel.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a job's steps, timing, bytes and error.")
        @OptionGroup var options: ConnectOptions
        @Argument(help: "The job id.") var id: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let job = try await options.connect().job(id)
                if json { return try printJSON(job) }
                print(JobOutput.details(job))
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a running job; it stops within a second and leaves no point or data visible.")
        @OptionGroup var options: ConnectOptions
        @Argument(help: "The job id.") var id: String

        func run() async throws {
            try await reportingErrors {
                _ = try await options.connect().cancel(jobID: id)
                print("cancellation requested for \(id)")
            }
        }
    }
}

struct PointsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "points", abstract: "A VM's recovery points: consistency, type, expiry and block accounting.")
    @OptionGroup var options: ConnectOptions
    @Argument(help: "The VM, as name or cloudService/name.") var vm: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let view = try await options.connect().points(of: vm)
            if json { return try printJSON(view) }
            let item = view.item
            print("\(item.vm): policy \(item.policy), \(item.state.rawValue)")
            print(pad("point", 28) + pad("taken (UTC)", 21) + pad("type", 10) + pad("consistency", 22) + pad("expires", 12)
                  + pad("added", 8, right: true) + pad("only here", 11, right: true) + pad("freed if expired", 18, right: true)
                  + "  verified")
            for row in view.points {
                let p = row.point
                print(pad(p.id, 28) + pad(String(Engine.instant(p.takenAt).prefix(19)), 21) + pad(p.type.rawValue, 10)
                      + pad(p.consistency.rawValue, 22) + pad(p.expiresAt.map { String(Engine.instant($0).prefix(10)) } ?? "never", 12)
                      + pad("\(row.blocksAdded)", 8, right: true) + pad("\(row.blocksOnlyHere)", 11, right: true)
                      + pad(ByteSize.format(row.bytesFreedIfExpired), 18, right: true) + "  " + Self.verified(p.verification))
            }
        }
    }
}

extension PointsCommand {
    /// `passed 2026-12-05 (data,boot)`, `FAILED 2026-12-05 (boot): BootVerificationFailed`, `never`.
    static func verified(_ verification: PointVerification?) -> String {
        guard let v = verification else { return "never" }
        let when = String(Engine.instant(v.at).prefix(10))
        let checks = v.checks.map(\.rawValue).joined(separator: ",")
        return v.succeeded ? "passed \(when) (\(checks))" : "FAILED \(when) (\(checks)): \(v.error?.code.rawValue ?? "?")"
    }
}

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore", abstract: "Restore a recovery point: to a folder, as a new VM, or over the VM's disks.",
        discussion: """
            Examples:
              coffre restore web01 --point rp-… --to /tmp/web01
              coffre restore web01 --point rp-… --to /tmp/web01 --format qcow2
              coffre restore web01 --point rp-… --as-new-vm web01-restored
              coffre restore web01 --point rp-… --as-new-vm web01-now --instant
              coffre restore web01 --point rp-… --replace-disks --yes     (the VM must be stopped)
            --instant (libvirt fabric): the new VM starts within seconds on the point's disks, served by
            this process (or the server) over NBD, while they are copied to local disks; it then switches
            to them. Keep this command (or the server) running until the job ends; here, Ctrl-C cancels
            the job and removes the VM. docs/libvirt.md has the details.
            """)
    @OptionGroup var options: ConnectOptions
    @Argument(help: "The VM, as name or cloudService/name.") var vm: String
    @Option(help: "The recovery point id.") var point: String
    @Option(help: "Write the disks into this folder, as sparse raw files (named like the disks) or --format qcow2 images.") var to: String?
    @Option(help: "With --to: raw or qcow2.") var format: String?
    @Option(help: "Create a new VM with this name in the VM's fabric and cloud service.") var asNewVm: String?
    @Flag(help: "With --as-new-vm: start the VM at once on the point's disks, copy them while it runs.") var instant = false
    @Flag(help: "Overwrite the VM's own disks.") var replaceDisks = false
    @Flag(help: "Confirm --replace-disks.") var yes = false
    @Flag(help: "No progress bar.") var noProgress = false
    @Flag(help: "Print the job as JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let diskFormat = try DiskFormat(parsing: format ?? "raw")
            if format != nil, to == nil {
                throw CoffreError(.invalidOption, "--format applies to --to only",
                                  workaround: "A new VM or replaced disks get the format the fabric uses for them")
            }
            if instant, asNewVm == nil {
                throw CoffreError(.invalidOption, "--instant applies to --as-new-vm only",
                                  workaround: "coffre restore VM --point P --as-new-vm NAME --instant")
            }
            let destinations: [RestoreDestination] = [
                to.map { .folder($0, format: diskFormat) },
                asNewVm.map { instant ? .instant(name: $0) : .newVM(name: $0) },
                replaceDisks ? .replaceDisks(confirmed: yes) : nil,
            ].compactMap { $0 }
            guard destinations.count == 1 else {
                throw CoffreError(.invalidRestoreTarget, "Give exactly one of --to DIR, --as-new-vm NAME, --replace-disks")
            }
            let plane = try await options.connect()
            let job = try await plane.restore(vm, point: point, to: destinations[0])
            // In this process, an instant restore serves the point: Ctrl-C (or SIGTERM) cancels
            // the job, which removes the VM, instead of killing the server under a running VM.
            let signals = instant && plane is LocalControlPlane
                ? SignalStop { _ in Task { _ = try? await plane.cancel(jobID: job.id) } } : nil
            defer { signals?.cancel() }
            _ = try await JobOutput.wait(plane, job, progress: !noProgress, json: json)
        }
    }
}

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Verify a recovery point: its data read back and checked, and it boots.",
        discussion: """
            Examples:
              coffre verify web01                                  (the newest point, data check)
              coffre verify web01 --point rp-… --checks data,boot --boot-command 'systemctl is-system-running --wait'
            data: every block of the point is read from the vault and checked against its hash.
            boot (libvirt fabric): the point runs as an isolated VM (no network, no shared disks or folders)
            until its guest agent answers and --boot-command, when given, exits 0 in the guest; then it is removed.
            The outcome is recorded on the point (coffre points); a failed check fails the job.
            """)
    @OptionGroup var options: ConnectOptions
    @Argument(help: "The VM, as name or cloudService/name.") var vm: String
    @Option(help: "The recovery point id (default: the newest).") var point: String?
    @Option(help: "data, boot, or data,boot (default data).") var checks = "data"
    @Option(help: "With boot: a shell command run in the guest; success is exit status 0.") var bootCommand: String?
    @Option(help: "With boot: seconds to wait for the guest (default 300).") var bootTimeout = VerificationPolicy.defaultBootTimeoutSeconds
    @Flag(help: "No progress bar.") var noProgress = false
    @Flag(help: "Print the job as JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let request = Engine.VerificationRequest(
                checks: try checks.split(separator: ",").map { try VerificationCheck(parsing: String($0)) },
                bootCommand: bootCommand, bootTimeoutSeconds: bootTimeout)
            let plane = try await options.connect()
            let job = try await plane.verify(vm, point: point, request)
            _ = try await JobOutput.wait(plane, job, progress: !noProgress, json: json)
        }
    }
}

struct StopProtectionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop-protection", abstract: "Stop backing up a VM, keeping its data or soft-deleting it.",
        discussion: """
            --retain-data: no more backups; points kept forever and restorable; `coffre resume` restarts protection.
            --delete-data: points soft-deleted for 14 days (setting softDeleteDays), restorable only after `coffre undelete`, then purged.
            """)
    @OptionGroup var options: ConnectOptions
    @Argument(help: "The VM, as name or cloudService/name.") var vm: String
    @Flag(help: "Keep the points.") var retainData = false
    @Flag(help: "Soft-delete the points.") var deleteData = false

    func run() async throws {
        try await reportingErrors {
            guard retainData != deleteData else {
                throw CoffreError(.invalidOption, "Give exactly one of --retain-data and --delete-data")
            }
            let plane = try await options.connect()
            _ = try await JobOutput.wait(plane, try await plane.stopProtection(vm, deleteData: deleteData))
        }
    }
}

struct UndeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "undelete", abstract: "Bring back a VM's soft-deleted backup data (protection stays stopped until resumed).")
    @OptionGroup var options: ConnectOptions
    @Argument(help: "The VM, as name or cloudService/name.") var vm: String

    func run() async throws {
        try await reportingErrors {
            let plane = try await options.connect()
            _ = try await JobOutput.wait(plane, try await plane.undelete(vm))
        }
    }
}

struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume", abstract: "Resume a stopped protection: backups restart and the policy's retention applies again.")
    @OptionGroup var options: ConnectOptions
    @Argument(help: "The VM, as name or cloudService/name.") var vm: String

    func run() async throws {
        try await reportingErrors {
            let plane = try await options.connect()
            _ = try await JobOutput.wait(plane, try await plane.resume(vm))
        }
    }
}
