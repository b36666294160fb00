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
                let unregistered = try request.boolQuery("unregistered") ?? false
                let summaries = try await itemsByVM(s.engine)
                return try Reply.json(try await s.engine.vms(unregistered: unregistered).map { view($0, summaries) })
            },
            APIRoute(.get, prefix + "/vms/{vm}", .reader) { _, context, s in
                let record = try await s.engine.resolveVM(try context.pathParameter("vm"))
                return try Reply.json(view(record, try await itemsByVM(s.engine)))
            },
            APIRoute(.post, prefix + "/registrations", .operator) { request, context, s in
                let body = try await request.decode(as: RegistrationBody.self, context: context)
                try requireNames(body.vms)
                return try bulk(await s.engine.register(body.vms))
            },
        ]
    }

    static func itemsByVM(_ engine: Engine) async throws -> [VMKey: ItemSummary] {
        Dictionary(try await engine.itemSummaries().map { ($0.item.vm, $0) }, uniquingKeysWith: { first, _ in first })
    }

    static func view(_ record: VMRecord, _ items: [VMKey: ItemSummary]) -> VMView {
        VMView(vm: record, protection: items[record.key]?.status, policy: items[record.key]?.item.policy)
    }

    static func requireNames(_ names: [String]) throws {
        guard !names.isEmpty else { throw APIError.badRequest("InvalidRequest", "Name at least one VM in 'vms'") }
    }

    /// 202 when at least one job started; otherwise the first error's status, same body.
    static func bulk(_ result: BulkResult) throws -> Response {
        let status = result.jobs.isEmpty ? result.errors.first.map { APIError.status(of: $0.error.code) } ?? .badRequest : .accepted
        return try Reply.json(BulkResponse(result), status: status)
    }
}
