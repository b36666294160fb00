import CoffreCore
import Foundation
import Hummingbird
import Logging

/// Turns every error a route throws into the API's JSON error body with the right status:
/// `CoffreError` by its code, malformed requests as 400, anything else as a logged 500.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = CoffreContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as CoffreError {
            throw APIError(error)
        } catch let error as ErrorInfo {
            throw APIError(error.error)
        } catch let error as DecodingError {
            throw APIError.badRequest(.invalidRequest, "The request body is not valid: \(Self.describe(error))",
                                      workaround: "See /api/v1/openapi.json for the expected body")
        } catch let error as HTTPError where error.status == .notFound && !APIRoutes.methods(forPath: request.uri.path).isEmpty {
            let allowed = APIRoutes.methods(forPath: request.uri.path)
            var failure = APIError(status: .methodNotAllowed, code: .methodNotAllowed,
                                   message: "\(request.uri.path) does not answer \(request.method.rawValue)",
                                   workaround: "Use \(allowed.joined(separator: " or "))")
            failure.allow = allowed.joined(separator: ", ")
            throw failure
        } catch let error as HTTPError {
            let code: CoffreError.Code = error.status == .notFound ? .routeNotFound : .invalidRequest
            throw APIError(status: error.status, code: code, message: error.body ?? error.status.reasonPhrase,
                           workaround: error.status == .notFound ? "See /api/v1/openapi.json for the routes" : nil)
        } catch {
            logger.error("\(request.method) \(request.uri.path) failed", metadata: ["error": "\(error)"])
            throw APIError(status: .internalServerError, code: .internalError, message: "The server failed: \(error)",
                           workaround: "Retry; if it fails again, report it with the server's log")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, let context): "missing '\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            "'\(context.codingPath.map(\.stringValue).joined(separator: "."))': \(context.debugDescription)"
        @unknown default: "\(error)"
        }
    }
}
