import CoffreCore
import CoffreEngine
import Foundation
import Hummingbird

// MARK: Policies

extension APIRoutes {
    static var policies: [APIRoute] {
        [
            APIRoute(.get, prefix + "/policies", .reader) { _, _, s in
                try Reply.json(try await s.engine.policies())
            },
            APIRoute(.get, prefix + "/policies/{name}", .reader) { _, context, s in
                try Reply.json(try await s.engine.policyView(named: try context.pathParameter("name")))
            },
            APIRoute(.post, prefix + "/policies", .operator) { request, context, s in
                let policy = try await request.decode(as: Policy.self, context: context)
                try await s.engine.createPolicy(policy)
                return try Reply.json(policy, status: .created, headers: [.location: prefix + "/policies/\(policy.name)"])
            },
            APIRoute(.put, prefix + "/policies/{name}", .operator, adminWhen: "the new retention keeps any kind of point for less time") {
                request, context, s in
                var policy = try await request.decode(as: Policy.self, context: context)
                policy.name = try context.pathParameter("name")
                let current = try await s.engine.policy(named: policy.name)
                if policy.retention.decreases(from: current.retention) { try context.require(.admin) }
                try await s.engine.updatePolicy(policy)
                return try Reply.json(policy)
            },
        ]
    }
}

extension Retention {
    /// Whether any kind of point (daily, weekly, monthly, yearly) would be kept for less time:
    /// shortening retention expires points, so it is a destructive change.
    func decreases(from old: Retention) -> Bool {
        days < old.days || (weeks ?? 0) < (old.weeks ?? 0) || (months ?? 0) < (old.months ?? 0) || (years ?? 0) < (old.years ?? 0)
    }
}
