import Hummingbird

/// Sets the context's role from `Authorization: Bearer TOKEN` or the `coffre_token` cookie.
///
/// It never rejects: routes decide with `context.require(_:)`, so public routes
/// (`/healthz`, `/login`, the OpenAPI document, static assets) work without a token.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = CoffreContext
    let tokens: TokenStore

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let token = Self.token(in: request) {
            context.role = try await tokens.role(of: token)
            context.unknownToken = context.role == nil
        }
        return try await next(request, context)
    }

    static func token(in request: Request) -> String? {
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                return parts[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return request.cookies["coffre_token"]?.value
    }
}
