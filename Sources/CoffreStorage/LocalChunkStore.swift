public import CoffreCore
import CoffreSystem
import Foundation

/// A chunk store in a local folder: each object a file at `<root>/<key>`.
///
/// A put writes a temporary file in `<root>/tmp/`, then gives it its name — by rename for
/// `.replace`, by `link` for `.create` (which fails when the name exists, so of two creators
/// exactly one wins) — so an object is visible whole or not at all. `.immediate` puts fsync the
/// file before naming it and the folder after; `.deferred` ones are made durable by `persist()`,
/// one `syncfs` for every pack a backup wrote (each pack's writeback is started as it is
/// written, so it finds little left to write). Packs go through the page cache on purpose: with
/// O_DIRECT writes the backup of the benchmark image was no faster on warm memory and the
/// restore that followed read every pack from the disk (2.3 s became 6.6 s, docs/benchmarks.md).
/// Temporary files of processes that no longer run are removed when a store is opened.
public final class LocalChunkStore: ChunkStore {
    public let root: String
    private var temporary: String { "\(root)/tmp" }

    public init(root: String) {
        self.root = root
        removeAbandonedTemporaries()
    }

    public var location: String { root }

    /// The free space of the store's file system that an unprivileged writer may use.
    public func availableBytes() throws -> Int64? {
        var stats = statvfs()
        guard statvfs(root, &stats) == 0 else { throw CoffreError.io("statvfs", root, errno: errno) }
        return Int64(stats.f_bavail) * Int64(stats.f_frsize)
    }

    /// Creates the folder of an empty store.
    public static func createLayout(at root: String) throws {
        try FileIO.makeDirectory(root, mode: 0o700)
        try FileIO.makeDirectory("\(root)/tmp")
    }

    func path(_ key: String) -> String { "\(root)/\(key)" }

    public func put(_ key: String, _ bytes: [UInt8], mode: PutMode, durability: Durability) throws -> Bool {
        let final = path(key)
        let tmp = "\(temporary)/\(Self.temporaryPrefix)\(randomHex(8))"
        let fd = try FileIO.open(tmp, [.writeOnly, .create, .exclusive], mode: 0o644)
        do {
            try FileIO.write(fd, bytes, path: tmp)
            switch durability {
            case .immediate: try FileIO.fsync(fd, path: tmp)
            // The disk works while the backup goes on: `persist` then waits for little.
            case .deferred: FileIO.startWriteback(fd)
            }
            FileIO.close(fd)
        } catch {
            FileIO.close(fd)
            FileIO.unlink(tmp)
            throw error
        }
        defer { FileIO.unlink(tmp) }
        let folder = FileIO.directoryName(final)
        if !FileIO.isDirectory(folder) { try FileIO.makeDirectories(folder) }
        let created: Bool
        switch mode {
        case .replace:
            try FileIO.rename(tmp, to: final)
            created = true
        case .create:
            created = try FileIO.linkIfAbsent(tmp, to: final)
        }
        if created && durability == .immediate { try FileIO.fsyncDirectory(folder) }
        return created
    }

    public func get(_ key: String, range: Range<Int64>?) throws -> [UInt8]? {
        guard let range else { return try FileIO.readFile(path(key)) }
        let p = path(key)
        guard let fd = try FileIO.openIfPresent(p, .readOnly) else { return nil }
        defer { FileIO.close(fd) }
        let size = try FileIO.status(of: fd, path: p).size
        guard range.lowerBound >= 0, range.upperBound <= size else {
            throw CoffreError.io("read \(range) of \(size) bytes", p, errno: 22)
        }
        var bytes = [UInt8](repeating: 0, count: range.count)
        try bytes.withUnsafeMutableBytes { try FileIO.pread(fd, $0, at: range.lowerBound, path: p) }
        return bytes
    }

    public func list(prefix: String) throws -> [StoredObject] {
        // The folder part of the prefix is walked; the rest filters names.
        let slash = prefix.lastIndex(of: "/")
        let folder = slash.map { String(prefix[..<$0]) } ?? ""
        var objects: [StoredObject] = []
        func walk(_ relative: String) throws {
            let dir = relative.isEmpty ? root : "\(root)/\(relative)"
            for name in try FileIO.list(dir) {
                let key = relative.isEmpty ? name : "\(relative)/\(name)"
                if key == "tmp" { continue }
                guard key.hasPrefix(prefix) || prefix.hasPrefix(key + "/") else { continue }
                guard let status = FileIO.linkStatus("\(dir)/\(name)") else { continue }  // removed meanwhile
                if status.kind == .directory {
                    try walk(key)
                } else if status.kind == .regular, key.hasPrefix(prefix), !name.hasPrefix(".") {
                    objects.append(StoredObject(key: key, size: status.size))
                }
            }
        }
        try walk(folder)
        return objects.sorted { $0.key < $1.key }
    }

    public func delete(_ keys: [String]) throws {
        var folders = Set<String>()
        for key in keys {
            let p = path(key)
            guard FileIO.hasEntry(p) else { continue }
            FileIO.unlink(p)
            folders.insert(FileIO.directoryName(p))
        }
        for folder in folders { try FileIO.fsyncDirectory(folder) }
    }

    public func persist() throws {
        try FileIO.syncFileSystem(of: root)
    }

    // MARK: Temporary files

    /// `<pid>-<start time>-`: whose temporary file it is.
    private static let temporaryPrefix: String = {
        let pid = Processes.currentID
        return "\(pid)-\(Processes.startTime(of: pid) ?? "0")-"
    }()

    private func removeAbandonedTemporaries() {
        for name in (try? FileIO.list(temporary)) ?? [] {
            let parts = name.split(separator: "-")
            guard parts.count == 3, let pid = Int32(parts[0]) else { continue }
            if Processes.startTime(of: pid) != String(parts[1]) { FileIO.unlink("\(temporary)/\(name)") }
        }
    }
}
