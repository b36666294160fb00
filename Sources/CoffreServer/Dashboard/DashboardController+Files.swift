import CoffreCore
import CoffreEngine
import Foundation
import Hummingbird

// File recovery: browse a point's file systems and download a file, or a folder as a tar.

extension DashboardController {
    func files(_ vm: String, point: String, _ request: Request, _ context: CoffreContext) async throws -> Response {
        struct Crumb { var name: String; var href: String }
        struct Row {
            var name: String
            var href: String?
            var downloadHref: String?
            var kind: String
            var mode: String
            var owner: String
            var size: String
            var modified: String
            var target: String?
            var note: String?
        }
        struct Body {
            var pointsHref: String
            var point: String
            var crumbs: [Crumb]
            var path: String
            var rows: [Row]
            var isEmpty: Bool
            var folderDownloadHref: String?
        }
        let path = request.uri.queryParameters.get("path").flatMap { $0.isEmpty ? nil : String($0) } ?? "/"
        let listing = try await engine.listFiles(vm, point: point, path: path)
        let key = try await engine.resolveVM(vm).key
        let base = DashboardFormat.pointsHref(key) + "/" + DashboardFormat.segment(point) + "/files"
        func browse(_ path: String) -> String { base + "?path=" + DashboardFormat.segment(path) }
        func download(_ path: String) -> String { base + "/download?path=" + DashboardFormat.segment(path) }
        // Inside a file system (a path of three or more parts) files and folders can be downloaded.
        func downloadable(_ path: String) -> Bool { path.split(separator: "/").count >= 3 }

        var crumbs = [Crumb(name: point, href: browse("/"))]
        var walked = ""
        for part in path.split(separator: "/") {
            walked += "/" + part
            crumbs.append(Crumb(name: String(part), href: browse(walked)))
        }
        let rows = listing.children.map { entry in
            Row(name: entry.name, href: entry.kind == .directory && entry.note == nil ? browse(entry.path) : nil,
                downloadHref: downloadable(entry.path) && entry.kind != .other ? download(entry.path) : nil,
                kind: entry.fileSystem ?? entry.kind.rawValue, mode: Self.modeString(entry),
                owner: "\(entry.uid):\(entry.gid)", size: entry.kind == .directory && entry.fileSystem == nil ? "" : ByteSize.format(entry.size),
                modified: entry.modified.timeIntervalSince1970 == 0 ? "" : DashboardFormat.instant(entry.modified),
                target: entry.target, note: entry.note)
        }
        let body = Body(pointsHref: DashboardFormat.pointsHref(key), point: point, crumbs: crumbs, path: path, rows: rows,
                        isEmpty: rows.isEmpty,
                        folderDownloadHref: downloadable(path) && listing.entry.kind == .directory ? download(path) : nil)
        return pages.page("files", title: "Files of \(point)", tab: .protected, role: context.role, body: body)
    }

    func downloadFile(_ vm: String, point: String, _ request: Request) async throws -> Response {
        guard let path = request.uri.queryParameters.get("path"), !path.isEmpty else {
            throw APIError.badRequest(.invalidRequest, "No file to download: the link has no path")
        }
        return try await Reply.download(try await engine.downloadFiles(vm, point: point, path: String(path)))
    }

    /// `drwxr-xr-x`, as `ls -l` writes it.
    static func modeString(_ entry: PointFileEntry) -> String {
        let type = switch entry.kind {
        case .directory: "d"
        case .symlink: "l"
        case .file: "-"
        case .other: "?"
        }
        let bits = ["r", "w", "x", "r", "w", "x", "r", "w", "x"]
        return type + bits.enumerated().map { index, letter in entry.mode & (0o400 >> index) != 0 ? letter : "-" }.joined()
    }
}
