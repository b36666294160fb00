public import CoffreCore
import CoffreSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What `copy` wrote.
public struct PointCopyReport: Codable, Sendable, Equatable {
    /// Where the copy is.
    public var destination: String
    public var files = 0
    public var directories = 0
    public var symlinks = 0
    public var bytes: Int64 = 0
    /// Entries left out, by path: sockets, and device nodes (a guest's device node would open
    /// a device of this host).
    public var skipped: [String] = []
}

/// Reading a mounted point's files by their paths, `/<disk>/part<N>/…`, such that nothing
/// outside the point's file systems can be reached: a path with `..` is refused, and every
/// path is resolved by the kernel beneath its file system's root (`FileIO.openBeneath`), so a
/// symbolic link that leaves it (absolute, or `..` above the root) fails with
/// `PathOutsidePoint` instead of being followed. Symbolic links inside the file system are
/// followed on the way, and copied as links, never followed, at the end of a path.
public struct PointFiles: Sendable {
    public let mount: PointMount

    public init(_ mount: PointMount) {
        self.mount = mount
    }

    /// The entry at `path` and, for a folder, what it holds (sorted by name). **Blocks.**
    public func list(_ path: String) throws -> PointListing {
        let location = try locate(path)
        switch location {
        case .root:
            let children = mount.disks.map(\.name).map { name in
                PointFileEntry(name: name, path: "/" + name, kind: .directory, size: 0, mode: 0o555, uid: 0, gid: 0,
                               modified: .init(timeIntervalSince1970: 0))
            }
            return PointListing(entry: PointFileEntry(name: "/", path: "/", kind: .directory, size: 0, mode: 0o555, uid: 0, gid: 0,
                                                      modified: .init(timeIntervalSince1970: 0)), children: children)
        case .disk(let name):
            let children = mount.fileSystems.filter { $0.disk == name }.map { fs in
                PointFileEntry(name: "part\(fs.partition)", path: "/" + fs.path, kind: .directory, size: fs.size, mode: 0o555,
                               uid: 0, gid: 0, modified: .init(timeIntervalSince1970: 0), fileSystem: fs.kind.rawValue,
                               note: fs.mounted ? nil : fs.note)
            }
            return PointListing(entry: PointFileEntry(name: name, path: "/" + name, kind: .directory, size: 0, mode: 0o555, uid: 0, gid: 0,
                                                      modified: .init(timeIntervalSince1970: 0)), children: children)
        case .inside(let fs, let rest):
            return try withNode(fs, rest, path: path) { parent, name, entry in
                guard entry.kind == .directory else { return PointListing(entry: entry, children: []) }
                let fd = try check(openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), "open", path)
                defer { close(fd) }
                let children = try Self.names(in: fd, path: path).map { child in
                    try self.entry(parent: fd, name: child, path: Self.join(path, child))
                }
                return PointListing(entry: entry, children: children)
            }
        }
    }

    /// Copies the file, symbolic link or folder at `path` to `destination` like `cp -a`: into it
    /// when it is a folder, else under that name. Modes, owners (when root), times and symbolic
    /// links are kept; hard links become separate files. Written under a temporary name and
    /// renamed when complete, so a failed copy leaves nothing half-written. Device nodes and
    /// sockets are left out and listed in the report. **Blocks.**
    public func copy(_ path: String, to destination: String) throws -> PointCopyReport {
        guard case .inside(let fs, let rest) = try locate(path) else {
            throw CoffreError(.invalidArgument, "\(path) is not inside a file system of the point",
                              workaround: "Copy a path as /<disk>/part<N>/…; to get whole disks, restore the point")
        }
        let target = FileIO.isDirectory(destination)
            ? (destination.hasSuffix("/") ? destination : destination + "/") + (rest.isEmpty ? "part\(fs.partition)" : FileIO.baseName(rest))
            : destination
        if FileIO.hasEntry(target) {
            throw CoffreError(.restoreTargetExists, "\(target) already exists", workaround: "Remove it, or copy to another place")
        }
        let folder = FileIO.directoryName(target)
        let temporary = ".\(FileIO.baseName(target)).coffre-partial-\(UInt32.random(in: 0...UInt32.max))"
        let destinationFD = try check(open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC), "open", folder)
        defer { close(destinationFD) }
        var report = PointCopyReport(destination: target)
        do {
            try withNode(fs, rest, path: path) { parent, name, _ in
                try copyNode(parent: parent, name: name, path: path, into: destinationFD, as: temporary, report: &report)
            }
            try check(renameat(destinationFD, temporary, destinationFD, FileIO.baseName(target)), "rename", target)
            try FileIO.fsyncDirectory(folder)
        } catch {
            try? FileIO.removeTree(folder + "/" + temporary)
            throw error
        }
        return report
    }

    /// Calls `body` with an open regular file of the point (for streaming it out). **Blocks.**
    public func withFile<T>(_ path: String, _ body: (_ fd: Int32, _ entry: PointFileEntry) throws -> T) throws -> T {
        guard case .inside(let fs, let rest) = try locate(path) else { throw CoffreError.notAFile(path) }
        return try withNode(fs, rest, path: path) { parent, name, entry in
            guard entry.kind == .file else { throw CoffreError.notAFile(path) }
            let fd = try check(openat(parent, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), "open", path)
            defer { close(fd) }
            return try body(fd, entry)
        }
    }

    /// Writes the file, symbolic link or folder at `path` as a tar archive to `write`, entries
    /// named from its base name on (`etc/`, `etc/hosts`, …): modes, owners, times and links as
    /// in the point. Sockets, devices and FIFOs are left out. **Blocks.**
    public func archive(_ path: String, to write: ([UInt8]) throws -> Void) throws {
        guard case .inside(let fs, let rest) = try locate(path) else {
            throw CoffreError(.invalidArgument, "\(path) is not inside a file system of the point",
                              workaround: "Download a path as /<disk>/part<N>/…; to get whole disks, restore the point")
        }
        try withNode(fs, rest, path: path) { parent, name, entry in
            try archiveNode(parent: parent, name: name, path: path, as: entry.name, write: write)
        }
        try write(TarWriter.end)
    }

    private func archiveNode(parent: Int32, name: String, path: String, as archived: String,
                             write: ([UInt8]) throws -> Void) throws {
        var s = stat()
        guard fstatat(parent, name, &s, AT_SYMLINK_NOFOLLOW) == 0 else { throw readError(errno, path) }
        var header = TarWriter.Header(name: archived, kind: .file, mode: Int(s.st_mode & 0o7777), uid: Int(s.st_uid),
                                      gid: Int(s.st_gid), modified: Int64(s.st_mtim.tv_sec))
        switch s.st_mode & S_IFMT {
        case S_IFREG:
            let input = try check(openat(parent, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), "open", path)
            defer { close(input) }
            header.size = Int64(s.st_size)
            try write(TarWriter.header(header))
            // The size is in the header already: exactly that many bytes follow, even if the
            // file were to change (it cannot: the file system is read-only).
            var done: Int64 = 0
            try readChunks(input, path: path) { chunk in
                let take = Int(min(Int64(chunk.count), header.size - done))
                if take > 0 { try write(Array(chunk.prefix(take))) }
                done += Int64(take)
            }
            if done < header.size { try write([UInt8](repeating: 0, count: Int(header.size - done))) }
            try write(TarWriter.padding(header.size))
        case S_IFDIR:
            header.kind = .directory
            try write(TarWriter.header(header))
            let input = try check(openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), "open", path)
            defer { close(input) }
            for child in try Self.names(in: input, path: path) {
                try archiveNode(parent: input, name: child, path: Self.join(path, child), as: archived + "/" + child, write: write)
            }
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlinkat(parent, name, &buffer, buffer.count - 1)
            guard n >= 0 else { throw readError(errno, path) }
            header.kind = .symlink
            header.linkTarget = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            try write(TarWriter.header(header))
        default:
            break
        }
    }

    /// Reads the regular file at `path` to its end, in pieces of up to 1 MiB (a download).
    /// **Blocks.**
    public func read(_ path: String, _ body: ([UInt8]) throws -> Void) throws {
        try withFile(path) { fd, _ in try readChunks(fd, path: path, body) }
    }

    /// Reads an open file to its end in pieces of 1 MiB.
    private func readChunks(_ fd: Int32, path: String, _ body: ([UInt8]) throws -> Void) throws {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw readError(errno, path)
            }
            if n == 0 { return }
            try body(Array(buffer[0..<n]))
        }
    }

    // MARK: Paths

    private enum Location {
        case root
        case disk(String)
        case inside(PointMount.FileSystem, rest: String)
    }

    /// Splits `/<disk>/part<N>/rest` and refuses what could name something outside the point.
    private func locate(_ path: String) throws -> Location {
        guard path.hasPrefix("/") else {
            throw CoffreError(.invalidArgument, "\(path) is not an absolute path of the point",
                              workaround: "Paths start at the point's root: /<disk>/part<N>/…")
        }
        let parts = path.split(separator: "/").filter { $0 != "." }
        if parts.contains("..") {
            throw CoffreError.pathOutsidePoint(path, point: mount.pointID, reason: "'..' is not accepted in a path")
        }
        if path.utf8.contains(0) { throw CoffreError.pathNotFound(path, point: mount.pointID) }
        guard let disk = parts.first.map(String.init) else { return .root }
        guard mount.disks.contains(where: { $0.name == disk }) else { throw CoffreError.pathNotFound(path, point: mount.pointID) }
        guard parts.count > 1 else { return .disk(disk) }
        guard let fs = mount.fileSystems.first(where: { $0.disk == disk && "part\($0.partition)" == parts[1] }) else {
            throw CoffreError.pathNotFound(path, point: mount.pointID)
        }
        guard fs.mounted else { throw CoffreError.fileSystemNotMounted("/" + fs.path, note: fs.note ?? "not mounted") }
        return .inside(fs, rest: parts.dropFirst(2).joined(separator: "/"))
    }

    /// Resolves `rest` beneath the file system's root: `body` gets the folder holding the last
    /// component (an O_PATH descriptor), its name ("." for the root itself) and its entry.
    private func withNode<T>(
        _ fs: PointMount.FileSystem, _ rest: String, path: String,
        _ body: (_ parent: Int32, _ name: String, _ entry: PointFileEntry) throws -> T
    ) throws -> T {
        let rootPath = mount.directory + "/" + fs.path
        let root = try check(open(rootPath, FileIO.pathOnly | O_DIRECTORY | O_CLOEXEC), "open", rootPath)
        defer { close(root) }
        let components = rest.split(separator: "/")
        guard let last = components.last.map(String.init) else {
            var entry = try self.entry(parent: root, name: ".", path: "/" + fs.path)
            entry.name = "part\(fs.partition)"
            return try body(root, ".", entry)
        }
        let parentPath = components.dropLast().joined(separator: "/")
        let parent: Int32
        switch FileIO.openBeneath(root, parentPath.isEmpty ? "." : parentPath, flags: FileIO.pathOnly | O_DIRECTORY) {
        case .success(let fd):
            parent = fd
        case .failure(let error):
            throw resolutionError(error.errno, path)
        }
        defer { close(parent) }
        return try body(parent, last, try entry(parent: parent, name: last, path: path))
    }

    private func resolutionError(_ code: Int32, _ path: String) -> CoffreError {
        switch code {
        case EXDEV:
            return .pathOutsidePoint(path, point: mount.pointID, reason: "a symbolic link on the way leaves its file system")
        case ENOENT, ENOTDIR:
            return .pathNotFound(path, point: mount.pointID)
        case ELOOP:
            return .pathOutsidePoint(path, point: mount.pointID, reason: "too many symbolic links")
        default:
            return readError(code, path)
        }
    }

    private func readError(_ code: Int32, _ path: String) -> CoffreError {
        if code == EIO, let failure = mount.readFailure {
            return CoffreError(.fileReadFailed, "Reading \(path) failed: \(failure.message)",
                               workaround: failure.workaround ?? "Run coffre vault verify", cause: failure)
        }
        return CoffreError(.fileReadFailed, "Reading \(path) failed: \(errnoDescription(code))",
                           workaround: code == EIO ? "A block of the point could not be read or failed verification: run coffre vault verify" : nil,
                           cause: SystemCallError(errno: code))
    }

    @discardableResult
    private func check(_ result: Int32, _ operation: String, _ path: String) throws -> Int32 {
        if result >= 0 { return result }
        let code = errno
        if code == ENOENT { throw CoffreError.pathNotFound(path, point: mount.pointID) }
        throw operation == "read" || operation == "open" ? readError(code, path) : CoffreError.io(operation, path, errno: code)
    }

    private static func join(_ path: String, _ name: String) -> String {
        path.hasSuffix("/") ? path + name : path + "/" + name
    }

    // MARK: Entries

    private func entry(parent: Int32, name: String, path: String) throws -> PointFileEntry {
        var s = stat()
        guard fstatat(parent, name, &s, AT_SYMLINK_NOFOLLOW) == 0 else { throw resolutionError(errno, path) }
        let kind: PointFileEntry.Kind = switch s.st_mode & S_IFMT {
        case S_IFREG: .file
        case S_IFDIR: .directory
        case S_IFLNK: .symlink
        default: .other
        }
        var target: String?
        if kind == .symlink {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlinkat(parent, name, &buffer, buffer.count - 1)
            if n >= 0 { target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        }
        return PointFileEntry(
            name: name == "." ? FileIO.baseName(path) : name, path: path, kind: kind, size: Int64(s.st_size),
            mode: Int(s.st_mode & 0o7777), uid: Int(s.st_uid), gid: Int(s.st_gid),
            modified: Date(timeIntervalSince1970: Double(s.st_mtim.tv_sec) + Double(s.st_mtim.tv_nsec) / 1e9),
            target: target)
    }

    /// The names in an open folder, sorted, without `.` and `..`.
    private static func names(in directory: Int32, path: String) throws -> [String] {
        let copy = dup(directory)
        guard copy >= 0, let stream = fdopendir(copy) else { throw CoffreError.io("opendir", path, errno: errno) }
        defer { closedir(stream) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw CoffreError.io("readdir", path, errno: errno) }
                break
            }
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    // MARK: Copying

    private func copyNode(parent: Int32, name: String, path: String, into destination: Int32, as target: String,
                          report: inout PointCopyReport) throws {
        var s = stat()
        guard fstatat(parent, name, &s, AT_SYMLINK_NOFOLLOW) == 0 else { throw readError(errno, path) }
        switch s.st_mode & S_IFMT {
        case S_IFREG:
            let input = try check(openat(parent, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), "open", path)
            defer { close(input) }
            let output = try check(openat(destination, target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600),
                                   "create", target)
            defer { close(output) }
            report.bytes += try copyData(from: input, to: output, path: path)
            try check(fsync(output), "fsync", target)
            try keepAttributes(s, fd: output, target: target)
            report.files += 1
        case S_IFDIR:
            try check(mkdirat(destination, target, 0o700), "mkdir", target)
            let input = try check(openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), "open", path)
            defer { close(input) }
            let output = try check(openat(destination, target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), "open", target)
            defer { close(output) }
            for child in try Self.names(in: input, path: path) {
                try copyNode(parent: input, name: child, path: Self.join(path, child), into: output, as: child, report: &report)
            }
            try keepAttributes(s, fd: output, target: target)
            report.directories += 1
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlinkat(parent, name, &buffer, buffer.count - 1)
            guard n >= 0 else { throw readError(errno, path) }
            buffer[n] = 0
            try check(symlinkat(buffer, destination, target), "symlink", target)
            if getuid() == 0 { _ = fchownat(destination, target, s.st_uid, s.st_gid, AT_SYMLINK_NOFOLLOW) }
            var times = [s.st_atim, s.st_mtim]
            _ = utimensat(destination, target, &times, AT_SYMLINK_NOFOLLOW)
            report.symlinks += 1
        case S_IFIFO:
            try check(mkfifoat(destination, target, s.st_mode & 0o7777), "mkfifo", target)
            _ = fchownat(destination, target, s.st_uid, s.st_gid, AT_SYMLINK_NOFOLLOW)
            var times = [s.st_atim, s.st_mtim]
            _ = utimensat(destination, target, &times, AT_SYMLINK_NOFOLLOW)
        default:
            report.skipped.append(path)
        }
    }

    /// Copies a file's bytes; runs of zeros are left as holes (the copy is sparse like the source).
    private func copyData(from input: Int32, to output: Int32, path: String) throws -> Int64 {
        var total: Int64 = 0
        try readChunks(input, path: path) { chunk in
            if chunk.contains(where: { $0 != 0 }) {
                try chunk.withUnsafeBytes { try FileIO.pwrite(output, $0, at: total, path: path) }
            }
            total += Int64(chunk.count)
        }
        // A file ending in a hole: its size comes from the offset, not from a write.
        guard ftruncate(output, off_t(total)) == 0 else { throw CoffreError.io("truncate", path, errno: errno) }
        return total
    }

    private func keepAttributes(_ s: stat, fd: Int32, target: String) throws {
        if getuid() == 0 { _ = fchown(fd, s.st_uid, s.st_gid) }
        try check(fchmod(fd, s.st_mode & 0o7777), "chmod", target)
        var times = [s.st_atim, s.st_mtim]
        try check(futimens(fd, &times), "set times of", target)
    }
}

extension CoffreError {
    static func notAFile(_ path: String) -> CoffreError {
        CoffreError(.invalidArgument, "\(path) is not a regular file", workaround: "List it with coffre files, or copy it with coffre files get")
    }
}
