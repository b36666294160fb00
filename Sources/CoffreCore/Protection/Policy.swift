public import Foundation

/// A backup policy: when to back up and how long to keep what it made (P1).
public struct Policy: Codable, Sendable, Equatable {
    public var name: String
    public var schedule: Schedule
    public var retention: Retention
    /// When and how the items' newest points are verified; nil: never on a schedule.
    public var verification: VerificationPolicy?

    public init(name: String, schedule: Schedule, retention: Retention, verification: VerificationPolicy? = nil) {
        self.name = name
        self.schedule = schedule
        self.retention = retention
        self.verification = verification
    }

    /// Throws the first problem with the policy, with a clear code (`InvalidPolicy…`).
    public func validate() throws {
        guard Naming.isValid(name) else { throw CoffreError.invalidName("Policy name", name) }
        try schedule.validate()
        try retention.validate(schedule: schedule)
        try verification?.validate()
    }
}

/// A time of day, `HH:MM`, 24-hour clock.
public struct TimeOfDay: Codable, Sendable, Equatable, Hashable, CustomStringConvertible {
    public var hour: Int
    public var minute: Int

    public init(hour: Int, minute: Int) {
        self.hour = hour
        self.minute = minute
    }

    /// Parses `HH:MM` (00:00–23:59).
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ (1...2).contains($0.count) }),
              let hour = Int(parts[0]), let minute = Int(parts[1]),
              (0...23).contains(hour), (0...59).contains(minute)
        else { throw CoffreError.invalidSchedule("'\(text)' is not a time of day HH:MM (00:00 to 23:59)") }
        self.init(hour: hour, minute: minute)
    }

    public var description: String {
        (hour < 10 ? "0" : "") + "\(hour):" + (minute < 10 ? "0" : "") + "\(minute)"
    }

    public init(from decoder: any Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Days of the week, named as people write them.
public enum Weekday: String, Codable, Sendable, CaseIterable, Comparable {
    case sunday, monday, tuesday, wednesday, thursday, friday, saturday

    /// Gregorian calendar's weekday number (1 = Sunday).
    public var calendarValue: Int { Self.allCases.firstIndex(of: self)! + 1 }

    public init?(calendarValue: Int) {
        guard (1...7).contains(calendarValue) else { return nil }
        self = Self.allCases[calendarValue - 1]
    }

    /// Accepts `monday`, `Monday`, `mon`.
    public init(parsing text: String) throws {
        let lower = text.lowercased()
        guard let day = Self.allCases.first(where: { $0.rawValue == lower || $0.rawValue.prefix(3) == lower })
        else { throw CoffreError.invalidSchedule("'\(text)' is not a day of the week") }
        self = day
    }

    public static func < (lhs: Weekday, rhs: Weekday) -> Bool { lhs.calendarValue < rhs.calendarValue }
}

/// When backups happen: daily or on chosen weekdays, at one time of day, in a named time zone.
public struct Schedule: Codable, Sendable, Equatable {
    public enum Frequency: String, Codable, Sendable { case daily, weekly }
    public var frequency: Frequency
    /// The days of a weekly schedule; empty for daily.
    public var weekdays: [Weekday]
    public var time: TimeOfDay
    /// An IANA time zone name, e.g. `Europe/Paris` or `UTC`.
    public var timeZone: String

    public init(frequency: Frequency, weekdays: [Weekday] = [], time: TimeOfDay, timeZone: String = "UTC") {
        self.frequency = frequency
        self.weekdays = weekdays.sorted()
        self.time = time
        self.timeZone = timeZone
    }

    public static func daily(at time: TimeOfDay, timeZone: String = "UTC") -> Schedule {
        Schedule(frequency: .daily, time: time, timeZone: timeZone)
    }

    public static func weekly(on days: [Weekday], at time: TimeOfDay, timeZone: String = "UTC") -> Schedule {
        Schedule(frequency: .weekly, weekdays: days, time: time, timeZone: timeZone)
    }

    public func validate() throws {
        guard TimeZone(identifier: timeZone) != nil else {
            throw CoffreError.invalidSchedule("'\(timeZone)' is not a known time zone (use an IANA name such as Europe/Paris or UTC)")
        }
        switch frequency {
        case .daily where !weekdays.isEmpty:
            throw CoffreError.invalidSchedule("a daily schedule takes no weekdays")
        case .weekly where weekdays.isEmpty:
            throw CoffreError.invalidSchedule("a weekly schedule needs at least one weekday")
        case .weekly where Set(weekdays).count != weekdays.count:
            throw CoffreError.invalidSchedule("a weekday is listed twice")
        default: break
        }
    }

    /// The calendar the schedule is read in (Gregorian, in the schedule's time zone).
    public var calendar: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: timeZone) ?? TimeZone(identifier: "UTC")!
        return calendar
    }

    /// The last scheduled instant at or before `date`, looking back at most 8 days.
    public func latestSlot(atOrBefore date: Date) -> Date? {
        let calendar = self.calendar
        let today = calendar.startOfDay(for: date)
        for back in 0...8 {
            guard let day = calendar.date(byAdding: .day, value: -back, to: today),
                  let slot = slot(on: day, calendar: calendar), slot <= date
            else { continue }
            return slot
        }
        return nil
    }

    /// The first scheduled instant strictly after `date`.
    public func nextSlot(after date: Date) -> Date? {
        let calendar = self.calendar
        let today = calendar.startOfDay(for: date)
        for ahead in 0...8 {
            guard let day = calendar.date(byAdding: .day, value: ahead, to: today),
                  let slot = slot(on: day, calendar: calendar), slot > date
            else { continue }
            return slot
        }
        return nil
    }

    /// The schedule's instant on the day starting at `day`, if it runs that day.
    /// On a daylight-saving gap the next valid instant is used.
    private func slot(on day: Date, calendar: Calendar) -> Date? {
        if frequency == .weekly {
            let weekday = calendar.component(.weekday, from: day)
            guard weekdays.contains(where: { $0.calendarValue == weekday }) else { return nil }
        }
        return calendar.date(bySettingHour: time.hour, minute: time.minute, second: 0, of: day,
                             matchingPolicy: .nextTime, repeatedTimePolicy: .first, direction: .forward)
    }

    /// `daily 22:00 Europe/Paris` or `weekly sat,sun 06:00 UTC`.
    public var summary: String {
        switch frequency {
        case .daily: "daily \(time) \(timeZone)"
        case .weekly: "weekly \(weekdays.map { String($0.rawValue.prefix(3)) }.joined(separator: ",")) \(time) \(timeZone)"
        }
    }
}
