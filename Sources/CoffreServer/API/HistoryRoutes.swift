import CoffreCore
import CoffreEngine
import Foundation
import Hummingbird

// MARK: History: what the dashboard's charts draw (issue 19)

extension APIRoutes {
    static var history: [APIRoute] {
        [
            APIRoute(.get, prefix + "/history/storage", .reader) { request, _, s in
                try Reply.json(try await s.engine.storageHistory(days: try days(request)))
            },
            APIRoute(.get, prefix + "/history/backups", .reader) { request, _, s in
                try Reply.json(try await s.engine.backupDays(days: try days(request)))
            },
            APIRoute(.get, prefix + "/history/items", .reader) { _, _, s in
                try Reply.json(try await s.engine.itemStorage())
            },
            APIRoute(.get, prefix + "/vms/{vm}/history", .reader) { request, context, s in
                try Reply.json(try await s.engine.itemHistory(of: try context.pathParameter("vm"), days: try days(request)))
            },
        ]
    }

    /// `?days=N`, 30 when absent; the engine checks the range.
    static func days(_ request: Request) throws -> Int {
        guard let text = request.query("days") else { return 30 }
        guard let value = Int(text) else {
            throw APIError.badRequest(.invalidFilter, "'days' must be an integer between 1 and 400, not '\(text)'")
        }
        return value
    }
}
