import CoffreCore
import CoffreEngine
import Foundation
import Hummingbird

// MARK: Files of recovery points: list a folder, download a file or a folder as a tar

extension APIRoutes {
    static var files: [APIRoute] {
        [
            APIRoute(.get, prefix + "/vms/{vm}/points/{point}/files", .operator) { request, context, s in
                try Reply.json(try await s.engine.listFiles(
                    try context.pathParameter("vm"), point: try context.pathParameter("point"), path: request.query("path") ?? "/"))
            },
            APIRoute(.get, prefix + "/vms/{vm}/points/{point}/files/download", .operator) { request, context, s in
                guard let path = request.query("path") else {
                    throw APIError.badRequest(.invalidRequest, "Give the file or folder to download as ?path=/<disk>/part<N>/…")
                }
                let download = try await s.engine.downloadFiles(
                    try context.pathParameter("vm"), point: try context.pathParameter("point"), path: path)
                return try await Reply.download(download)
            },
        ]
    }
}

extension Reply {
    /// A download as an attachment: its first piece is read before the answer starts, so a
    /// point that cannot be read is an error status, not a cut-off body. A later failure ends
    /// the body early (its length or its tar end then misses).
    static func download(_ download: PointDownload) async throws -> Response {
        let first: [UInt8]?
        do {
            first = try await download.next()
        } catch {
            download.cancel()
            throw error
        }
        var headers: HTTPFields = [
            .contentType: download.isArchive ? "application/x-tar" : "application/octet-stream",
            .contentDisposition: contentDisposition(download.fileName),
        ]
        if let size = download.size { headers[.contentLength] = String(size) }
        let body = ResponseBody { writer in
            var finished = false
            defer { if !finished { download.cancel() } }
            if let first { try await writer.write(ByteBuffer(bytes: first)) }
            if first != nil {
                while let chunk = try await download.next() {
                    try await writer.write(ByteBuffer(bytes: chunk))
                }
            }
            finished = true
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    /// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266): an ASCII fallback and the real name.
    static func contentDisposition(_ name: String) -> String {
        let ascii = String(name.unicodeScalars.map { $0.isASCII && $0 != "\"" && $0 != "\\" && $0.value >= 0x20 ? Character($0) : "_" })
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        let encoded = name.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ascii
        return "attachment; filename=\"\(ascii)\"; filename*=UTF-8''\(encoded)"
    }
}
