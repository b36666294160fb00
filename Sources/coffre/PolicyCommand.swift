import ArgumentParser
import CoffreCore
import CoffreEngine
import Foundation

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Backup policies: schedule and retention.",
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
                Coffre allows retention up to 9999 days and any number of weekly/monthly/yearly points (Azure's preview capped it at 30 days).
                """)
        @OptionGroup var options: ConnectOptions
        @Argument(help: "The policy's name.") var name: String
        @OptionGroup var definition: Definition

        func run() async throws {
            try await reportingErrors {
                let policy = Policy(name: name, schedule: try definition.schedule(default: nil),
                                    retention: try definition.retention(default: nil))
                try await options.connect().createPolicy(policy)
                print(Self.describe(policy))
            }
        }

        static func describe(_ policy: Policy) -> String {
            "\(policy.name): \(policy.schedule.summary), keep \(policy.retention.summary)"
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
                let policy = Policy(name: name, schedule: try definition.schedule(default: current.schedule),
                                    retention: try definition.retention(default: current.retention))
                try await plane.updatePolicy(policy)
                print(Create.describe(policy))
            }
        }
    }
}
