import CoffreCore
import CoffreEngine
import Foundation
import Hummingbird

// MARK: Inventory: fabrics, discovery, VMs, registration

extension APIRoutes {
    static var inventory: [APIRoute] {
        [
            APIRoute(.get, prefix + "/fabrics", .reader) { _, _, s in
                try Reply.json(try await s.engine.catalog.fabrics())
            },
            APIRoute(.post, prefix + "/discovery", .operator) { _, _, s in
                try Reply.accepted(try await s.engine.discover())
            },
            APIRoute(.get, prefix + "/vms", .reader) { request, _, s in
                try Reply.json(try await s.engine.vmViews(unregistered: try request.boolQuery("unregistered") ?? false))
            },
            APIRoute(.get, prefix + "/vms/{vm}", .reader) { _, context, s in
                try Reply.json(try await s.engine.vmView(try context.pathParameter("vm")))
            },
            APIRoute(.post, prefix + "/registrations", .operator) { request, context, s in
                let body = try await request.decode(as: RegistrationBody.self, context: context)
                try requireNames(body.vms)
                return try bulk(await s.engine.register(body.vms))
            },
        ]
    }

    static func requireNames(_ names: [String]) throws {
        guard !names.isEmpty else { throw APIError.badRequest(.invalidRequest, "Name at least one VM in 'vms'") }
    }

    /// 202 when at least one job started; otherwise the first error's status, same body.
    static func bulk(_ result: BulkResult) throws -> Response {
        let status = result.jobs.isEmpty ? result.errors.first.map { APIError.status(of: $0.error.code) } ?? .badRequest : .accepted
        return try Reply.json(BulkResponse(result), status: status)
    }
}
