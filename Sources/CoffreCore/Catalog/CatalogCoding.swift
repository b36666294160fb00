import Foundation

// How catalogs keep nested values (lists, dictionaries, whole records) as JSON text, shared by
// every catalog so that each gives back exactly what it was given, field for field.

/// A stored value this version of Coffre cannot read back: an unknown enum case, broken JSON.
public struct UnreadableValue: Error, CustomStringConvertible {
    public var column: String
    public var value: String

    public init(column: String, value: String) {
        self.column = column
        self.value = value
    }

    public var description: String { "column \(column) holds '\(value.prefix(200))', which this version of Coffre cannot read" }
}

/// JSON text in one column.
public enum JSONColumn {
    /// Dates keep `Date`'s own Double (seconds since 2001), exact both ways; keys are sorted, so
    /// one value always gives the same text.
    public static func encode(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .deferredToDate
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// - Throws: `UnreadableValue` naming `column`.
    public static func decode<T: Decodable>(_ text: String, column: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(text.utf8))
        } catch {
            throw UnreadableValue(column: column, value: text)
        }
    }
}
