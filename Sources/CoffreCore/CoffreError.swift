/// A user-facing error: a stable code, a message, and what the user can do about it.
///
/// Codes are part of Coffre's contract (CLI, API, tests): add new ones, never rename.
public struct CoffreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Stable identifier, e.g. `PointNotFound`.
    public var code: String
    /// What went wrong, one sentence, no trailing period needed.
    public var message: String
    /// The recommended action, when there is one.
    public var workaround: String?
    /// Where it was raised, for diagnostics.
    public var location: String

    public init(
        _ code: String, _ message: String, workaround: String? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.workaround = workaround
        self.location = "\(file):\(line)"
    }

    public static func == (lhs: CoffreError, rhs: CoffreError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.workaround == rhs.workaround
    }

    /// One line: `[Code]: message. Workaround: …`.
    public var description: String {
        var line = "[\(code)]: \(message)"
        if let workaround { line += ". Workaround: \(workaround)" }
        return line.replacingNewlines()
    }
}

extension String {
    func replacingNewlines() -> String {
        String(map { $0.isNewline ? " " : $0 })
    }
}
