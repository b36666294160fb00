public import Foundation

/// What a caller may do: readers look, operators run operations, admins also destroy data.
public enum Role: String, Codable, Sendable, Comparable, CaseIterable {
    case reader
    case `operator`
    case admin

    private var rank: Int {
        switch self {
        case .reader: 0
        case .operator: 1
        case .admin: 2
        }
    }

    public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rank < rhs.rank }
}

/// An API token as the catalog keeps it: only the hash of its secret, so every node sharing
/// the catalog accepts it and a stolen catalog lets nobody in.
public struct APIToken: Codable, Sendable, Equatable {
    public var name: String
    public var role: Role
    /// Hex SHA-256 of the token.
    public var hash: String
    public var createdAt: Date

    public init(name: String, role: Role, hash: String, createdAt: Date) {
        self.name = name
        self.role = role
        self.hash = hash
        self.createdAt = createdAt
    }
}
