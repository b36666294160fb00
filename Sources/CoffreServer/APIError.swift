public import CoffreCore
import Foundation
public import Hummingbird

/// An error as the API answers it: an HTTP status and the body `{code, message, workaround}`.
public struct APIError: HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var body: Body
    /// The `Allow` header of a 405.
    var allow: String?

    /// The JSON body of every error response.
    public struct Body: Codable, Sendable, Equatable {
        public var code: String
        public var message: String
        public var workaround: String?
    }

    public init(status: HTTPResponse.Status, code: String, message: String, workaround: String? = nil) {
        self.status = status
        self.body = Body(code: code, message: message, workaround: workaround)
    }

    /// The response for a `CoffreError`: its status comes from `statusByCode`.
    public init(_ error: CoffreError) {
        self.init(status: Self.status(of: error.code), code: error.code, message: error.message, workaround: error.workaround)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        if let allow { headers[.allow] = allow }
        let data = try APIJSON.encoder.encode(body)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func unauthenticated() -> APIError {
        APIError(status: .unauthorized, code: "Unauthenticated", message: "This request needs a token",
                 workaround: "Send 'Authorization: Bearer TOKEN'; the first admin token is in the data folder's admin-token file")
    }

    static func unknownToken() -> APIError {
        APIError(status: .unauthorized, code: "Unauthenticated", message: "This server does not know the token sent",
                 workaround: "Check the token (an admin lists them with `coffre token list`); the first admin token is in the data folder's admin-token file")
    }

    static func forbidden(needs: Role, has: Role) -> APIError {
        APIError(status: .forbidden, code: "Forbidden", message: "This operation needs the \(needs.rawValue) role; the token has \(has.rawValue)",
                 workaround: "Use a token with the \(needs.rawValue) role")
    }

    static func badRequest(_ code: String, _ message: String, workaround: String? = nil) -> APIError {
        APIError(status: .badRequest, code: code, message: message, workaround: workaround)
    }

    // MARK: Mapping by code

    /// The HTTP status of each error code; codes not listed are validation errors (400) when
    /// raised before a job starts, except `InternalError` and the storage failures (500).
    static let statusByCode: [String: HTTPResponse.Status] = [
        // 404: the thing named does not exist.
        "VMNotFound": .notFound, "PolicyNotFound": .notFound, "JobNotFound": .notFound,
        "RecoveryPointNotFound": .notFound, "PointNotFound": .notFound, "FabricNotFound": .notFound,
        "NotProtected": .notFound, "NoRecoveryPoint": .notFound, "RouteNotFound": .notFound,
        // 409: the request is valid but the current state forbids it.
        "AnotherOperationInProgress": .conflict, "DiscoveryInProgress": .conflict, "AlreadyProtected": .conflict,
        "AlreadyRegistered": .conflict, "PolicyAlreadyExists": .conflict, "JobNotRunning": .conflict,
        "ProtectionStopped": .conflict, "ItemSoftDeleted": .conflict, "ItemNotSoftDeleted": .conflict,
        "ProtectionNotStopped": .conflict, "VMNotRegistered": .conflict, "VMVanished": .conflict,
        "RestoreTargetExists": .conflict, "AmbiguousVMName": .conflict,
        // 401/403: who is asking.
        "Unauthenticated": .unauthorized, "Forbidden": .forbidden,
        // 500: the server failed.
        "InternalError": .internalServerError, "IOError": .internalServerError, "ChunkDamaged": .internalServerError,
        "ChunkMissing": .internalServerError, "WrongEncryptionKey": .internalServerError,
        "EncryptionKeyMissing": .internalServerError, "VaultNotFound": .internalServerError,
        "VaultFormatUnsupported": .internalServerError,
    ]

    static func status(of code: String) -> HTTPResponse.Status {
        statusByCode[code] ?? .badRequest
    }
}
