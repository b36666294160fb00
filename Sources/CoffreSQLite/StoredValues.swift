import CoffreCore
import Foundation

// How domain values become column values and back. Every conversion is exact: the catalog
// must give back what it was given, field for field.

extension Date {
    /// Seconds since 2001-01-01, `Date`'s own representation. Seconds since 1970 would be
    /// computed by adding an offset, which loses the last bit of about half of all dates.
    var stored: Double { timeIntervalSinceReferenceDate }

    init(stored: Double) {
        self.init(timeIntervalSinceReferenceDate: stored)
    }
}

/// An enum stored by its raw value.
func decodeRaw<T: RawRepresentable<String>>(_ raw: String, column: String) throws -> T {
    guard let value = T(rawValue: raw) else { throw UnreadableValue(column: column, value: raw) }
    return value
}

extension ErrorInfo {
    /// Rebuilds an error kept as code, message and workaround columns; nil when there is none.
    init?(storedCode code: String?, message: String?, workaround: String?) {
        guard let code else { return nil }
        self.init(code: CoffreError.Code(rawValue: code), message: message ?? "", workaround: workaround)
    }
}
