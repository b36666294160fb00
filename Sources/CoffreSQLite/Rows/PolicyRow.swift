import CoffreCore
internal import GRDB

/// A row of `policies`: the schedule and the retention in columns of their own.
struct PolicyRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "policies"
    enum Columns {
        static let name = Column(CodingKeys.name)
    }

    var name: String
    var scheduleFrequency: String
    /// JSON `[Weekday]`.
    var scheduleWeekdays: String
    /// `HH:MM`.
    var scheduleTime: String
    var scheduleTimeZone: String
    var retentionDays: Int
    var retentionWeeks: Int?
    var retentionMonths: Int?
    var retentionYears: Int?
    /// JSON `VerificationPolicy`, or NULL when the policy verifies nothing.
    var verification: String?

    init(_ policy: Policy) throws {
        name = policy.name
        scheduleFrequency = policy.schedule.frequency.rawValue
        scheduleWeekdays = try JSONColumn.encode(policy.schedule.weekdays)
        scheduleTime = policy.schedule.time.description
        scheduleTimeZone = policy.schedule.timeZone
        retentionDays = policy.retention.days
        retentionWeeks = policy.retention.weeks
        retentionMonths = policy.retention.months
        retentionYears = policy.retention.years
        verification = try policy.verification.map { try JSONColumn.encode($0) }
    }

    func record() throws -> Policy {
        let time: TimeOfDay
        do {
            time = try TimeOfDay(parsing: scheduleTime)
        } catch {
            throw UnreadableValue(column: "policies.scheduleTime", value: scheduleTime)
        }
        var schedule = Schedule(
            frequency: try decodeRaw(scheduleFrequency, column: "policies.scheduleFrequency"),
            time: time, timeZone: scheduleTimeZone)
        // Assigned, not passed to init, so the days come back in the order they were saved.
        schedule.weekdays = try JSONColumn.decode(scheduleWeekdays, column: "policies.scheduleWeekdays")
        let retention = Retention(days: retentionDays, weeks: retentionWeeks, months: retentionMonths, years: retentionYears)
        return Policy(name: name, schedule: schedule, retention: retention,
                      verification: try verification.map { try JSONColumn.decode($0, column: "policies.verification") })
    }
}
