import ArgumentParser
import CoffreCore
import CoffreEngine
import Foundation

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Backup policies: schedule, retention and scheduled verification.",
        subcommands: [Create.self, List.self, Show.self, Set.self])

    /// Schedule and retention options shared by create and set.
    struct Definition: ParsableArguments {
        @Option(help: "Back up every day at HH:MM.") var daily: String?
        @Option(help: "Back up on these days (e.g. sat,sun) at --at HH:MM.") var weekly: String?
        @Option(help: "Time of a weekly backup, HH:MM.") var at: String?
        @Option(help: "IANA time zone of the schedule (default UTC).") var timeZone: String?
        @Option(help: "Keep every scheduled point N days (1–9999).") var keepDays: Int?
        @Option(help: "Keep the first point of each week N weeks.") var keepWeeks: Int?
        @Option(help: "Keep the first point of each month N months.") var keepMonths: Int?
        @Option(help: "Keep the first point of each year N years.") var keepYears: Int?
        @Option(help: "Verify the newest point of each VM every day at HH:MM.") var verifyDaily: String?
        @Option(help: "Verify on these days (e.g. sun) at --verify-at HH:MM.") var verifyWeekly: String?
        @Option(help: "Time of a weekly verification, HH:MM (alone: moves the current verification's time).") var verifyAt: String?
        @Option(help: "Checks of scheduled verifications: data, boot, or data,boot (default data).") var verifyChecks: String?
        @Option(help: "Boot check: a shell command run in the guest; success is exit status 0 ('' clears it).") var verifyBootCommand: String?
        @Option(help: "Boot check: seconds to wait for the guest (default 300).") var verifyBootTimeout: Int?
        @Flag(help: "Verify nothing on a schedule (policy set: stop verifying).") var noVerify = false

        func schedule(default current: Schedule?) throws -> Schedule {
            let zone = timeZone ?? current?.timeZone ?? "UTC"
            switch (daily, weekly) {
            case (let time?, nil): return .daily(at: try TimeOfDay(parsing: time), timeZone: zone)
            case (nil, let days?):
                guard let at else { throw CoffreError.invalidSchedule("--weekly needs --at HH:MM") }
                let weekdays = try days.split(separator: ",").map { try Weekday(parsing: String($0)) }
                return .weekly(on: weekdays, at: try TimeOfDay(parsing: at), timeZone: zone)
            case (nil, nil):
                guard var current else { throw CoffreError.invalidSchedule("give --daily HH:MM or --weekly DAYS --at HH:MM") }
                current.timeZone = zone
                return current
            default: throw CoffreError.invalidSchedule("give either --daily or --weekly, not both")
            }
        }

        /// The scheduled verification: new from the --verify options, else the current one with
        /// what they change; nil with --no-verify or when there is none.
        func verification(default current: VerificationPolicy?, timeZone: String) throws -> VerificationPolicy? {
            let changes = [verifyDaily, verifyWeekly, verifyAt, verifyChecks, verifyBootCommand].contains { $0 != nil }
                || verifyBootTimeout != nil
            if noVerify {
                guard !changes else { throw CoffreError(.invalidOption, "--no-verify takes no other --verify option") }
                return nil
            }
            guard changes else { return current }
            var schedule: Schedule
            switch (verifyDaily, verifyWeekly) {
            case (let time?, nil):
                guard verifyAt == nil else { throw CoffreError.invalidSchedule("--verify-daily takes its time itself: --verify-daily HH:MM") }
                schedule = .daily(at: try TimeOfDay(parsing: time), timeZone: timeZone)
            case (nil, let days?):
                guard let at = verifyAt ?? current.flatMap({ $0.schedule.frequency == .weekly ? $0.schedule.time.description : nil }) else {
                    throw CoffreError.invalidSchedule("--verify-weekly needs --verify-at HH:MM")
                }
                schedule = .weekly(on: try days.split(separator: ",").map { try Weekday(parsing: String($0)) },
                                   at: try TimeOfDay(parsing: at), timeZone: timeZone)
            case (nil, nil):
                guard let current else {
                    throw CoffreError.invalidSchedule("give --verify-daily HH:MM or --verify-weekly DAYS --verify-at HH:MM")
                }
                schedule = current.schedule
                schedule.timeZone = timeZone
                // --verify-at alone moves the current schedule's time.
                if let verifyAt { schedule.time = try TimeOfDay(parsing: verifyAt) }
            default: throw CoffreError.invalidSchedule("give either --verify-daily or --verify-weekly, not both")
            }
            let checks = try verifyChecks.map { try $0.split(separator: ",").map { try VerificationCheck(parsing: String($0)) } }
            // An empty --verify-boot-command clears the command.
            let command = verifyBootCommand.map { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 } ?? current?.bootCommand
            return VerificationPolicy(
                schedule: schedule, checks: checks ?? current?.checks ?? [.data], bootCommand: command,
                bootTimeoutSeconds: verifyBootTimeout ?? current?.bootTimeoutSeconds ?? VerificationPolicy.defaultBootTimeoutSeconds)
        }

        func retention(default current: Retention?) throws -> Retention {
            guard let days = keepDays ?? current?.days else { throw CoffreError.invalidRetention("give --keep-days N") }
            return Retention(days: days, weeks: keepWeeks ?? current?.weeks,
                             months: keepMonths ?? current?.months, years: keepYears ?? current?.years)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a policy.",
            discussion: """
                Examples:
                  coffre policy create nightly --daily 22:00 --time-zone Europe/Paris --keep-days 30 --keep-weeks 12 --keep-months 12
                  coffre policy create weekend --weekly sat,sun --at 06:00 --keep-days 28
                  coffre policy create checked --daily 22:00 --keep-days 30 --verify-weekly sun --verify-at 04:00 --verify-checks data,boot
                Coffre allows retention up to 9999 days and any number of weekly/monthly/yearly points (Azure's preview capped it at 30 days).
                """)
        @OptionGroup var options: ConnectOptions
        @Argument(help: "The policy's name.") var name: String
        @OptionGroup var definition: Definition

        func run() async throws {
            try await reportingErrors {
                let schedule = try definition.schedule(default: nil)
                let policy = Policy(name: name, schedule: schedule, retention: try definition.retention(default: nil),
                                    verification: try definition.verification(default: nil, timeZone: schedule.timeZone))
                try await options.connect().createPolicy(policy)
                print(Self.describe(policy))
            }
        }

        static func describe(_ policy: Policy) -> String {
            "\(policy.name): \(policy.schedule.summary), keep \(policy.retention.summary)"
                + (policy.verification.map { "; verify \($0.summary)" } ?? "")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List policies.")
        @OptionGroup var options: ConnectOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let policies = try await options.connect().policies()
                if json { return try printJSON(policies) }
                policies.forEach { print(Create.describe($0)) }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a policy and the VMs it protects.")
        @OptionGroup var options: ConnectOptions
        @Argument(help: "The policy's name.") var name: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let view = try await options.connect().policy(named: name)
                if json { return try printJSON(view) }
                print(Create.describe(view.policy))
                if let next = view.policy.schedule.nextSlot(after: AppOptions.clock().now()) { print("next run: \(Engine.instant(next))") }
                for item in view.items { print("  \(item.item.vm): \(item.status), \(item.pointCount) points") }
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a policy; the expiry of existing points is recomputed.",
            discussion: "Example: coffre policy set nightly --keep-days 60")
        @OptionGroup var options: ConnectOptions
        @Argument(help: "The policy's name.") var name: String
        @OptionGroup var definition: Definition

        func run() async throws {
            try await reportingErrors {
                let plane = try await options.connect()
                let current = try await plane.policy(named: name).policy
                let schedule = try definition.schedule(default: current.schedule)
                let policy = Policy(name: name, schedule: schedule, retention: try definition.retention(default: current.retention),
                                    verification: try definition.verification(default: current.verification, timeZone: schedule.timeZone))
                try await plane.updatePolicy(policy)
                print(Create.describe(policy))
            }
        }
    }
}
