import CoffreCore
import Foundation
public import Hummingbird

/// One route of the server with the least role it needs: the table the router, the auth tests
/// and the OpenAPI check all read.
public struct APIRoute: Sendable {
    public let method: HTTPRequest.Method
    /// OpenAPI-style path, e.g. `/api/v1/vms/{vm}/points`; Hummingbird reads `{vm}` the same way.
    public let path: String
    /// `nil`: public (no token needed).
    public let role: Role?
    /// When the route needs admin instead of `role`, e.g. "deleteData is true".
    public let adminWhen: String?
    let handler: @Sendable (Request, CoffreContext, APIServices) async throws -> Response

    init(
        _ method: HTTPRequest.Method, _ path: String, _ role: Role?, adminWhen: String? = nil,
        handler: @escaping @Sendable (Request, CoffreContext, APIServices) async throws -> Response
    ) {
        self.method = method
        self.path = path
        self.role = role
        self.adminWhen = adminWhen
        self.handler = handler
    }

    /// Checks the caller's role, then runs the handler.
    func respond(_ request: Request, _ context: CoffreContext, _ services: APIServices) async throws -> Response {
        if let role { try context.require(role) }
        return try await handler(request, context, services)
    }
}

extension APIRoute {
    /// `GET /api/v1/vms`-style key for comparing route sets.
    public var key: String { "\(method.rawValue) \(path)" }
}

/// Response helpers shared by the handlers.
enum Reply {
    /// `value` as JSON with `status`.
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        var headers = headers
        headers[.contentType] = "application/json; charset=utf-8"
        let data = try APIJSON.encoder.encode(value)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A job just started: 202 with its record and where to follow it.
    static func accepted(_ job: Job) throws -> Response {
        try json(job, status: .accepted, headers: [.location: "/api/v1/jobs/\(job.id)"])
    }

    static func text(_ text: String, contentType: String) -> Response {
        Response(status: .ok, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

extension CoffreContext {
    /// A path parameter, percent-decoded (a VM named `cloudService/name` arrives as `cloudService%2Fname`).
    func pathParameter(_ name: String) throws -> String {
        guard let raw = parameters.get(name) else {
            throw APIError.badRequest(.invalidRequest, "Missing path parameter '\(name)'")
        }
        return raw.removingPercentEncoding ?? raw
    }
}

extension Request {
    /// A query parameter (Hummingbird decodes it); `nil` when absent or empty.
    func query(_ name: String) -> String? {
        guard let value = uri.queryParameters.get(name), !value.isEmpty else { return nil }
        return value
    }

    /// `true`/`false`/`1`/`0`; anything else is a 400.
    func boolQuery(_ name: String) throws -> Bool? {
        guard let text = query(name) else { return nil }
        switch text.lowercased() {
        case "true", "1": return true
        case "false", "0": return false
        default: throw APIError.badRequest(.invalidRequest, "'\(name)' must be true or false, not '\(text)'")
        }
    }
}
