public import Foundation

/// How long a policy keeps the points it makes: every scheduled point for `days`, and the
/// first scheduled point of each week, month and year for longer when asked (GFS, P1).
public struct Retention: Codable, Sendable, Equatable {
    /// Every scheduled point is kept this many days.
    public var days: Int
    /// The first scheduled point of each week (weeks start on Sunday) is kept this many weeks.
    public var weeks: Int?
    /// The first scheduled point of each calendar month is kept this many months.
    public var months: Int?
    /// The first scheduled point of each calendar year is kept this many years.
    public var years: Int?

    public init(days: Int, weeks: Int? = nil, months: Int? = nil, years: Int? = nil) {
        self.days = days
        self.weeks = weeks
        self.months = months
        self.years = years
    }

    public static let maximumDays = 9999
    public static let maximumWeeks = 5163
    public static let maximumMonths = 1188
    public static let maximumYears = 99

    public func validate(schedule: Schedule) throws {
        guard (1...Self.maximumDays).contains(days) else {
            throw CoffreError.invalidRetention(
                "daily retention \(days) must be between 1 and \(Self.maximumDays) days (Azure's preview capped it at 30 days; Coffre allows more)")
        }
        if schedule.frequency == .weekly, days < 7 {
            throw CoffreError.invalidRetention(
                "a weekly schedule must keep points at least 7 days, or a point expires before the next one exists")
        }
        try Self.check(weeks, "weekly", "weeks", Self.maximumWeeks)
        try Self.check(months, "monthly", "months", Self.maximumMonths)
        try Self.check(years, "yearly", "years", Self.maximumYears)
    }

    private static func check(_ value: Int?, _ name: String, _ unit: String, _ maximum: Int) throws {
        guard let value else { return }
        guard (1...maximum).contains(value) else {
            throw CoffreError.invalidRetention("\(name) retention \(value) must be between 1 and \(maximum) \(unit)")
        }
    }

    /// The long-term tags a scheduled point taken at `time` earns, given the item's earlier
    /// scheduled points: it is weekly if no earlier point falls in its week, and so on.
    /// Tags are decided once, when the point is committed, so expiring a point never promotes another.
    public func tags(forPointAt time: Date, earlierPoints: [Date], calendar: Calendar) -> Set<RetentionTag> {
        var tags = Set<RetentionTag>()
        for tag in RetentionTag.allCases where limit(for: tag) != nil {
            let period = tag.period(of: time, calendar: calendar)
            if !earlierPoints.contains(where: { $0 < time && tag.period(of: $0, calendar: calendar) == period }) {
                tags.insert(tag)
            }
        }
        return tags
    }

    /// When a scheduled point taken at `time` with `tags` expires under this retention.
    public func expiry(ofPointAt time: Date, tags: Set<RetentionTag>, calendar: Calendar) -> Date {
        var expiry = calendar.date(byAdding: .day, value: days, to: time)!
        for tag in tags {
            guard let count = limit(for: tag),
                  let date = calendar.date(byAdding: tag.component, value: count * tag.multiplier, to: time)
            else { continue }
            expiry = max(expiry, date)
        }
        return expiry
    }

    private func limit(for tag: RetentionTag) -> Int? {
        switch tag {
        case .weekly: weeks
        case .monthly: months
        case .yearly: years
        }
    }

    /// `30 days, 12 weeks, 12 months`.
    public var summary: String {
        var parts = ["\(days) days"]
        if let weeks { parts.append("\(weeks) weeks") }
        if let months { parts.append("\(months) months") }
        if let years { parts.append("\(years) years") }
        return parts.joined(separator: ", ")
    }
}

/// Why a point is kept longer than the daily retention.
public enum RetentionTag: String, Codable, Sendable, CaseIterable, Comparable {
    case weekly, monthly, yearly

    var component: Calendar.Component {
        switch self {
        case .weekly: .day
        case .monthly: .month
        case .yearly: .year
        }
    }

    var multiplier: Int { self == .weekly ? 7 : 1 }

    func period(of date: Date, calendar: Calendar) -> [Int] {
        switch self {
        case .weekly:
            let parts = calendar.dateComponents([.yearForWeekOfYear, .weekOfYear], from: date)
            return [parts.yearForWeekOfYear!, parts.weekOfYear!]
        case .monthly:
            let parts = calendar.dateComponents([.year, .month], from: date)
            return [parts.year!, parts.month!]
        case .yearly:
            return [calendar.component(.year, from: date)]
        }
    }

    public static func < (lhs: RetentionTag, rhs: RetentionTag) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}
