public import Foundation

/// One entry of a point's file systems, as `coffre files` and the API list it.
public struct PointFileEntry: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case file, directory, symlink, other
    }

    public var name: String
    /// The path inside the point: `/<disk>/part<N>/…`.
    public var path: String
    public var kind: Kind
    public var size: Int64
    /// Permission bits, with set-id and sticky bits (`0o4755`).
    public var mode: Int
    public var uid: Int
    public var gid: Int
    public var modified: Date
    /// A symbolic link's target, as stored.
    public var target: String?
    /// A partition: its file system (ext4, xfs, btrfs, vfat, …), and why it cannot be read.
    public var fileSystem: String?
    public var note: String?

    public init(name: String, path: String, kind: Kind, size: Int64, mode: Int, uid: Int, gid: Int, modified: Date,
                target: String? = nil, fileSystem: String? = nil, note: String? = nil) {
        self.name = name
        self.path = path
        self.kind = kind
        self.size = size
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.modified = modified
        self.target = target
        self.fileSystem = fileSystem
        self.note = note
    }
}

/// A folder of a point (or one entry, when the path is not a folder).
public struct PointListing: Codable, Sendable, Equatable {
    public var entry: PointFileEntry
    /// A folder's entries, sorted by name; empty for anything else.
    public var children: [PointFileEntry]

    public init(entry: PointFileEntry, children: [PointFileEntry]) {
        self.entry = entry
        self.children = children
    }
}

/// A file of a point, or a folder as a tar archive, to send to a client: pulled piece by piece,
/// so a slow client holds the reading back instead of filling memory.
public struct PointDownload: Sendable {
    /// The name to save it under: the file's, or the folder's with `.tar`.
    public var fileName: String
    public var isArchive: Bool
    /// A file's size; nil for an archive (its length is known at its end).
    public var size: Int64?
    /// The next piece (up to 1 MiB), nil at the end; a read that fails throws. Call it from one
    /// task at a time.
    public var next: @Sendable () async throws -> [UInt8]?
    /// Ends the download early (the client went away); call it when not read to the end.
    public var cancel: @Sendable () -> Void

    public init(fileName: String, isArchive: Bool, size: Int64?, next: @escaping @Sendable () async throws -> [UInt8]?,
                cancel: @escaping @Sendable () -> Void) {
        self.fileName = fileName
        self.isArchive = isArchive
        self.size = size
        self.next = next
        self.cancel = cancel
    }
}

/// Reads the files of points for the API and the dashboard: mounts a point with its file
/// systems on first use and keeps it while it is used (CoffreMount's `PointFileService`).
/// Paths are `/<disk>/part<N>/…`; nothing outside the point's file systems can be reached.
public protocol PointFileBrowser: Sendable {
    /// Lists `path` of the point `id`; `open` opens the point when it is not mounted yet.
    func list(point id: String, path: String, open: @escaping @Sendable () async throws -> any PointDisks) async throws -> PointListing
    /// A file's bytes, or a folder as a tar archive (modes, owners, times and links kept).
    func download(point id: String, path: String, open: @escaping @Sendable () async throws -> any PointDisks) async throws -> PointDownload
    /// Unmounts every point; the browser can be used again afterwards.
    func closeAll() async
}
