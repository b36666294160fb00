import CoffreCore
import CoffreEngine
import Foundation
import Hummingbird

// MARK: Health, metrics, the OpenAPI document, dashboard counts, nodes, tokens

extension APIRoutes {
    static var system: [APIRoute] {
        [
            APIRoute(.get, "/healthz", nil) { _, _, _ in
                try Reply.json(Health(status: "ok"))
            },
            APIRoute(.get, "/metrics", .reader) { _, _, s in
                await s.metrics.update()
                return Reply.text(s.metrics.exposition(), contentType: "text/plain; version=0.0.4; charset=utf-8")
            },
            APIRoute(.get, prefix + "/openapi.json", nil) { _, _, _ in
                Reply.text(OpenAPIDocument.json, contentType: "application/json; charset=utf-8")
            },
            APIRoute(.get, prefix + "/dashboard", .reader) { _, _, s in
                try Reply.json(try await s.engine.dashboard())
            },
            APIRoute(.get, prefix + "/nodes", .reader) { _, _, s in
                try Reply.json(try await s.engine.nodes())
            },
            APIRoute(.get, prefix + "/tokens", .admin) { _, _, s in
                try Reply.json(try await s.tokens.all().map { TokenView(name: $0.name, role: $0.role, createdAt: $0.createdAt) })
            },
            APIRoute(.post, prefix + "/tokens", .admin) { request, context, s in
                let body = try await request.decode(as: TokenBody.self, context: context)
                guard Naming.isValid(body.name) else { throw CoffreError.invalidName("Token name", body.name) }
                let token = try await s.tokens.create(name: body.name, role: body.role)
                return try Reply.json(TokenResponse(name: body.name, role: body.role, token: token), status: .created)
            },
        ]
    }
}
