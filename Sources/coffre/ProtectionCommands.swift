import ArgumentParser
import CoffreCore
import CoffreEngine
import Foundation

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Back up a protected VM now (on-demand): full the first time, incremental after.",
        discussion: "Example: coffre backup web01 --retain-until 2027-01-31")
    @OptionGroup var app: AppOptions
    @Argument(help: "The VM, as name or cloudService/name.") var vm: String
    @Option(help: "Keep this point until DATE (YYYY-MM-DD; default: 30 days).") var retainUntil: String?
    @Flag(help: "No progress bar.") var noProgress = false
    @Flag(help: "Print the job as JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let until = try retainUntil.map(parseDate)
            let engine = try await app.makeEngine()
            let job = try await engine.backupNow(vm, retainUntil: until)
            _ = try await JobOutput.wait(engine, job, progress: !noProgress, json: json)
        }
    }
}

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "List jobs, newest first.",
        discussion: "Example: coffre jobs --type backup --status failed --since 24h")
    @OptionGroup var app: AppOptions
    @Option(help: "Discovery, Register, ConfigureProtection, Backup, Restore, StopProtection, DeleteBackupData, Undelete.") var type: String?
    @Option(help: "InProgress, Succeeded, Failed, Cancelled.") var status: String?
    @Option(help: "Only jobs of this VM.") var vm: String?
    @Option(help: "Only jobs started since: 24h, 7d, or a date.") var since: String?
    @Option(help: "At most N jobs.") var limit: Int?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            var filter = JobFilter(limit: limit)
            if let type {
                guard let parsed = JobType(parsing: type) else {
                    throw CoffreError("InvalidFilter", "Unknown job type '\(type)'", workaround: "Use one of \(JobType.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                filter.type = parsed
            }
            if let status {
                guard let parsed = JobStatus(parsing: status) else {
                    throw CoffreError("InvalidFilter", "Unknown job status '\(status)'", workaround: "Use one of \(JobStatus.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                filter.status = parsed
            }
            let engine = try await app.makeEngine()
            if let vm { filter.vm = try await engine.resolveVM(vm).key }
            if let since { filter.since = try Self.parseSince(since, now: engine.clock.now()) }
            let jobs = try await engine.jobs(filter)
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

    static func parseSince(_ text: String, now: Date) throws -> Date {
        if let unit = text.last, let count = Double(text.dropLast()), "hdm".contains(unit) {
            let seconds = unit == "h" ? 3600.0 : unit == "d" ? 86400 : 60
            return now.addingTimeInterval(-count * seconds)
        }
        return try parseDate(text).addingTimeInterval(-86_399)
    }
}

struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job", abstract: "One job: its steps, or cancel it.", subcommands: [Show.self, Cancel.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a job's steps, timing, bytes and error.")
        @OptionGroup var app: AppOptions
        @Argument(help: "The job id.") var id: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let engine = try await app.makeEngine()
                let job = try await engine.job(id)
                if json { return try printJSON(job) }
                print(JobOutput.details(job))
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a running job; it stops within a second and leaves no point or data visible.")
        @OptionGroup var app: AppOptions
        @Argument(help: "The job id.") var id: String

        func run() async throws {
            try await reportingErrors {
                let engine = try await app.makeEngine()
                try await engine.cancel(jobID: id)
                print("cancellation requested for \(id)")
            }
        }
    }
}

struct PointsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "points", abstract: "A VM's recovery points: consistency, type, expiry and block accounting.")
    @OptionGroup var app: AppOptions
    @Argument(help: "The VM, as name or cloudService/name.") var vm: String
    @Flag(help: "Print JSON.") var json = false

    struct Row: Encodable {
        var point: RecoveryPointRecord
        var blocksAdded: Int
        var blocksOnlyHere: Int
        var bytesFreedIfExpired: Int64
    }

    func run() async throws {
        try await reportingErrors {
            let engine = try await app.makeEngine()
            let (item, points, accounting) = try await engine.points(of: vm)
            let rows = points.map { point in
                let a = accounting[point.id]
                return Row(point: point, blocksAdded: a?.blocksAdded ?? point.stats.blocksAdded,
                           blocksOnlyHere: a?.blocksOnlyHere ?? 0, bytesFreedIfExpired: a?.bytesFreedIfExpired ?? 0)
            }
            if json { return try printJSON(rows) }
            print("\(item.vm): policy \(item.policy), \(item.state.rawValue)")
            print(pad("point", 28) + pad("taken (UTC)", 21) + pad("type", 10) + pad("consistency", 22) + pad("expires", 12)
                  + pad("added", 8, right: true) + pad("only here", 11, right: true) + pad("freed if expired", 18, right: true))
            for row in rows {
                let p = row.point
                print(pad(p.id, 28) + pad(String(Engine.instant(p.takenAt).prefix(19)), 21) + pad(p.type.rawValue, 10)
                      + pad(p.consistency.rawValue, 22) + pad(p.expiresAt.map { String(Engine.instant($0).prefix(10)) } ?? "never", 12)
                      + pad("\(row.blocksAdded)", 8, right: true) + pad("\(row.blocksOnlyHere)", 11, right: true)
                      + pad(ByteSize.format(row.bytesFreedIfExpired), 18, right: true))
            }
        }
    }
}

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore", abstract: "Restore a recovery point: to a folder, as a new VM, or over the VM's disks.",
        discussion: """
            Examples:
              coffre restore web01 --point rp-… --to /tmp/web01
              coffre restore web01 --point rp-… --as-new-vm web01-restored
              coffre restore web01 --point rp-… --replace-disks --yes     (the VM must be stopped)
            """)
    @OptionGroup var app: AppOptions
    @Argument(help: "The VM, as name or cloudService/name.") var vm: String
    @Option(help: "The recovery point id.") var point: String
    @Option(help: "Write raw sparse disk images into this folder.") var to: String?
    @Option(help: "Create a new VM with this name in the VM's fabric and cloud service.") var asNewVm: String?
    @Flag(help: "Overwrite the VM's own disks.") var replaceDisks = false
    @Flag(help: "Confirm --replace-disks.") var yes = false
    @Flag(help: "No progress bar.") var noProgress = false
    @Flag(help: "Print the job as JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let destinations: [RestoreDestination] = [
                to.map { .folder($0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0) },
                asNewVm.map { .newVM(name: $0) },
                replaceDisks ? .replaceDisks(confirmed: yes) : nil,
            ].compactMap { $0 }
            guard destinations.count == 1 else {
                throw CoffreError("InvalidRestoreTarget", "Give exactly one of --to DIR, --as-new-vm NAME, --replace-disks")
            }
            let engine = try await app.makeEngine()
            let job = try await engine.restore(vm, point: point, to: destinations[0])
            _ = try await JobOutput.wait(engine, job, progress: !noProgress, json: json)
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
    @OptionGroup var app: AppOptions
    @Argument(help: "The VM, as name or cloudService/name.") var vm: String
    @Flag(help: "Keep the points.") var retainData = false
    @Flag(help: "Soft-delete the points.") var deleteData = false

    func run() async throws {
        try await reportingErrors {
            guard retainData != deleteData else {
                throw CoffreError("InvalidOption", "Give exactly one of --retain-data and --delete-data")
            }
            let engine = try await app.makeEngine()
            _ = try await JobOutput.wait(engine, try await engine.stopProtection(vm, deleteData: deleteData))
        }
    }
}

struct UndeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "undelete", abstract: "Bring back a VM's soft-deleted backup data (protection stays stopped until resumed).")
    @OptionGroup var app: AppOptions
    @Argument(help: "The VM, as name or cloudService/name.") var vm: String

    func run() async throws {
        try await reportingErrors {
            let engine = try await app.makeEngine()
            _ = try await JobOutput.wait(engine, try await engine.undelete(vm))
        }
    }
}

struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume", abstract: "Resume a stopped protection: backups restart and the policy's retention applies again.")
    @OptionGroup var app: AppOptions
    @Argument(help: "The VM, as name or cloudService/name.") var vm: String

    func run() async throws {
        try await reportingErrors {
            let engine = try await app.makeEngine()
            _ = try await JobOutput.wait(engine, try await engine.resume(vm))
        }
    }
}
