import CoffreCore
import CoffreEngine
import Foundation
import Hummingbird

// MARK: Jobs

extension APIRoutes {
    static var jobs: [APIRoute] {
        [
            APIRoute(.get, prefix + "/jobs", .reader) { request, _, s in
                try Reply.json(try await s.engine.jobs(matching: try jobQuery(request)))
            },
            APIRoute(.get, prefix + "/jobs/{id}", .reader) { _, context, s in
                try Reply.json(try await s.engine.job(try context.pathParameter("id")))
            },
            APIRoute(.post, prefix + "/jobs/{id}/cancel", .operator) { _, context, s in
                try Reply.accepted(try await s.engine.cancel(jobID: try context.pathParameter("id")))
            },
        ]
    }

    /// The query string as a `JobQuery`; the engine checks the values.
    static func jobQuery(_ request: Request) throws -> JobQuery {
        var query = JobQuery(type: request.query("type"), status: request.query("status"),
                             vm: request.query("vm"), since: request.query("since"))
        if let limit = request.query("limit") {
            guard let value = Int(limit) else {
                throw APIError.badRequest(.invalidFilter, "'limit' must be a positive integer, not '\(limit)'")
            }
            query.limit = value
        }
        return query
    }
}
