/// A user-facing error: a stable code, a message, what the user can do about it, what caused
/// it and where it was raised.
///
/// Codes are part of Coffre's contract (CLI, API, tests): add new ones, never rename.
public struct CoffreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Stable identifier, e.g. `.pointNotFound` (`PointNotFound` on the wire).
    public var code: Code
    /// What went wrong, one sentence, no trailing period needed.
    public var message: String
    /// The recommended action, when there is one.
    public var workaround: String?
    /// The lower-level error this one reports (an errno, a driver's error), for diagnostics.
    public var cause: (any Error)?
    /// Where it was raised (`Module/File.swift:line`), for diagnostics.
    public var location: String

    public init(
        _ code: Code, _ message: String, workaround: String? = nil, cause: (any Error)? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.workaround = workaround
        self.cause = cause
        self.location = "\(file):\(line)"
    }

    /// Equal when users see the same error: code, message and workaround (cause and location
    /// are diagnostics).
    public static func == (lhs: CoffreError, rhs: CoffreError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.workaround == rhs.workaround
    }

    /// One line: `[Code]: message. Workaround: …`.
    public var description: String {
        var line = "[\(code)]: \(message)"
        if let workaround { line += ". Workaround: \(workaround)" }
        return line.replacingNewlines()
    }

    /// The description, then where it was raised and its cause: for logs.
    public var diagnostic: String {
        var line = "\(description) (at \(location))"
        if let cause { line += "; caused by: \(String(describing: cause).replacingNewlines())" }
        return line
    }


    /// A stable error code: a name from the catalogue (`CoffreError+Codes.swift`).
    ///
    /// Compared as a value, never as a string. The strings users see are `rawValue`; a code
    /// read back from the wire (a server's answer, a job's record, a guest's report) that this
    /// version does not know stays what it was.
    public struct Code: Hashable, Sendable, Codable, RawRepresentable, CustomStringConvertible {
        public let rawValue: String

        /// A code as read from the wire. Code in Coffre names codes by their static members.
        public init(rawValue: String) {
            self.rawValue = rawValue
        }

        /// Declarations of the catalogue only.
        init(_ rawValue: String) {
            self.rawValue = rawValue
        }

        public init(from decoder: any Decoder) throws {
            rawValue = try decoder.singleValueContainer().decode(String.self)
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(rawValue)
        }

        public var description: String { rawValue }

        /// Whether the catalogue of this version holds the code.
        public var isKnown: Bool { Self.catalogueSet.contains(self) }
        private static let catalogueSet = Set(catalogue)
    }
}

extension String {
    func replacingNewlines() -> String {
        String(map { $0.isNewline ? " " : $0 })
    }
}
