import CoffreCore
import CoffreEngine
import Foundation
import Hummingbird

// MARK: Protection: protect, backup now, points, restore, verify, stop, resume, undelete

extension APIRoutes {
    static var protection: [APIRoute] {
        [
            APIRoute(.post, prefix + "/protection", .operator) { request, context, s in
                let body = try await request.decode(as: ProtectionBody.self, context: context)
                try requireNames(body.vms)
                return try bulk(await s.engine.protect(body.vms, policy: body.policy, change: body.change ?? false))
            },
            APIRoute(.get, prefix + "/protected-items", .reader) { _, _, s in
                try Reply.json(try await s.engine.itemSummaries())
            },
            APIRoute(.post, prefix + "/vms/{vm}/backup", .operator) { request, context, s in
                let body = try await optionalBody(BackupBody.self, request, context) ?? BackupBody()
                return try Reply.accepted(try await s.engine.backupNow(try context.pathParameter("vm"), retainUntil: body.retainUntil))
            },
            APIRoute(.get, prefix + "/vms/{vm}/points", .reader) { _, context, s in
                try Reply.json(try await s.engine.pointsView(of: try context.pathParameter("vm")))
            },
            APIRoute(.post, prefix + "/vms/{vm}/restore", .operator,
                     adminWhen: "replaceDisks is true or folder is an absolute path") { request, context, s in
                let body = try await request.decode(as: RestoreBody.self, context: context)
                let destination = try restoreDestination(body, context: context, root: s.configuration.restoreRoot)
                return try Reply.accepted(try await s.engine.restore(try context.pathParameter("vm"), point: body.point, to: destination))
            },
            APIRoute(.post, prefix + "/vms/{vm}/verify", .operator) { request, context, s in
                let body = try await optionalBody(VerifyBody.self, request, context) ?? VerifyBody()
                return try Reply.accepted(try await s.engine.verify(try context.pathParameter("vm"), point: body.point, try body.request()))
            },
            APIRoute(.post, prefix + "/vms/{vm}/stop-protection", .operator, adminWhen: "deleteData is true") { request, context, s in
                let body = try await request.decode(as: StopProtectionBody.self, context: context)
                if body.deleteData { try context.require(.admin) }
                return try Reply.accepted(try await s.engine.stopProtection(try context.pathParameter("vm"), deleteData: body.deleteData))
            },
            APIRoute(.post, prefix + "/vms/{vm}/resume", .operator) { _, context, s in
                try Reply.accepted(try await s.engine.resume(try context.pathParameter("vm")))
            },
            APIRoute(.post, prefix + "/vms/{vm}/undelete", .operator) { _, context, s in
                try Reply.accepted(try await s.engine.undelete(try context.pathParameter("vm")))
            },
        ]
    }

    /// The body as `T`, or `nil` when the request has none.
    static func optionalBody<T: Decodable>(_ type: T.Type, _ request: Request, _ context: CoffreContext) async throws -> T? {
        var request = request
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else { return nil }
        return try APIJSON.decoder.decode(type, from: Data(buffer.readableBytesView))
    }

    /// Exactly one destination; the destructive or unconfined ones need admin.
    static func restoreDestination(_ body: RestoreBody, context: CoffreContext, root: String) throws -> RestoreDestination {
        let chosen = [body.folder != nil, body.newVmName != nil, body.replaceDisks == true].filter { $0 }.count
        guard chosen == 1 else {
            throw APIError.badRequest(.invalidRestoreTarget, "Give exactly one of 'folder', 'newVmName', 'replaceDisks'")
        }
        guard body.instant != true || body.newVmName != nil else {
            throw APIError.badRequest(.invalidRestoreTarget, "'instant' applies to 'newVmName' only")
        }
        if let folder = body.folder {
            guard !folder.isEmpty, !folder.split(separator: "/").contains("..") else {
                throw APIError.badRequest(.invalidRestoreTarget, "'folder' must be a path without '..'")
            }
            guard let format = DiskFormat(rawValue: body.format ?? "raw") else {
                throw APIError.badRequest(.invalidDiskFormat, "'format' must be one of: raw, qcow2")
            }
            if folder.hasPrefix("/") {
                try context.require(.admin)
                return .folder(folder, format: format)
            }
            // The engine creates the last folder only: the restore root may not exist yet.
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            return .folder(root + "/" + folder, format: format)
        }
        guard body.format == nil else {
            throw APIError.badRequest(.invalidRestoreTarget, "'format' applies to 'folder' only")
        }
        if let name = body.newVmName { return body.instant == true ? .instant(name: name) : .newVM(name: name) }
        try context.require(.admin)
        return .replaceDisks(confirmed: body.confirm ?? false)
    }
}
