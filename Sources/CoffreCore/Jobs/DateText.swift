public import Foundation

/// Dates as people type them on the command line and in query strings; the CLI and the
/// REST API read them the same way.
public enum DateText {
    /// `2027-01-31` (the end of that day, UTC) or an ISO 8601 instant: "keep until".
    public static func until(_ text: String) throws -> Date {
        if let date = ISO8601DateFormatter().date(from: text) { return date }
        guard let day = day(text) else {
            throw CoffreError(.invalidDate, "'\(text)' is not a date",
                              workaround: "Use YYYY-MM-DD or an ISO 8601 instant such as 2027-01-31T18:00:00Z")
        }
        return day.addingTimeInterval(86_399)
    }

    /// `24h`, `7d`, `30m`, a day `2027-01-31` (its start, UTC) or an ISO 8601 instant: "since".
    public static func since(_ text: String, now: Date) throws -> Date {
        if let unit = text.last, "hdm".contains(unit), let count = Double(text.dropLast()), count >= 0, count < 1e7 {
            let seconds = unit == "h" ? 3600.0 : unit == "d" ? 86_400 : 60
            return now.addingTimeInterval(-count * seconds)
        }
        if let date = ISO8601DateFormatter().date(from: text) { return date }
        guard let day = day(text) else {
            throw CoffreError(.invalidFilter, "'since' is not a duration or a date: '\(text)'",
                              workaround: "Use 24h, 7d, 2027-01-31 or an ISO 8601 instant")
        }
        return day
    }

    /// The start (UTC) of a `YYYY-MM-DD` day.
    private static func day(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        return text.utf8.count == 10 ? formatter.date(from: text) : nil
    }
}

/// A job list request as typed (`--type backup --since 24h`), checked by the engine.
public struct JobQuery: Sendable, Equatable {
    public var type: String?
    public var status: String?
    /// A VM as name or cloudService/name.
    public var vm: String?
    /// See `DateText.since`.
    public var since: String?
    public var limit: Int?

    public init(type: String? = nil, status: String? = nil, vm: String? = nil, since: String? = nil, limit: Int? = nil) {
        self.type = type
        self.status = status
        self.vm = vm
        self.since = since
        self.limit = limit
    }
}
