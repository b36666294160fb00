public import CoffreCore
public import Foundation
import Synchronization

/// A clock tests move by hand: a day of schedules runs in milliseconds.
public final class ManualClock: TimeSource {
    private let current: Mutex<Date>

    public init(_ start: Date) {
        current = Mutex(start)
    }

    /// `ManualClock(iso: "2026-11-22T08:00:00Z")`.
    public convenience init(iso text: String) {
        self.init(ISO8601DateFormatter().date(from: text)!)
    }

    public func now() -> Date { current.withLock { $0 } }

    public func advance(by seconds: TimeInterval) {
        current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }

    public func set(_ date: Date) {
        current.withLock { $0 = date }
    }
}
