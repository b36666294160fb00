public import CoffreCore
import Foundation
public import Hummingbird

/// The request context of every Coffre route: Hummingbird's storage plus the caller's role.
public struct CoffreContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The caller's role, set by the auth middleware; `nil` when no valid token came.
    public var role: Role?
    /// A token came but the server does not know it (revoked, mistyped, another server's).
    public var unknownToken = false

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.role = nil
    }

    /// JSON with ISO 8601 dates in both directions.
    public var requestDecoder: JSONDecoder { APIJSON.decoder }
    public var responseEncoder: JSONEncoder { APIJSON.encoder }
}

extension CoffreContext {
    /// Throws 401 when the caller is not authenticated, 403 when its role is below `role`.
    public func require(_ role: Role) throws {
        guard let current = self.role else { throw unknownToken ? APIError.unknownToken() : APIError.unauthenticated() }
        guard current >= role else { throw APIError.forbidden(needs: role, has: current) }
    }
}

/// The API's JSON settings (the CLI's remote mode uses them too).
public enum APIJSON {
    public static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    public static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
