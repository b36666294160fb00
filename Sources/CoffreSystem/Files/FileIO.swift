import CoffreCore
import CShims
#if canImport(Glibc)
import Glibc
#endif

/// Thin, throwing wrappers over the POSIX file calls Coffre needs, and the durable-write
/// discipline every module shares: temp file in the same folder, fsync, rename, fsync the
/// folder. Descriptors are opened with O_CLOEXEC, so a child process never inherits one.
///
/// Errors are `IOError`s naming the operation and the path.
package enum FileIO {
    /// How a file is opened (`open(2)`'s flags, without O_CLOEXEC, which is always added).
    package struct OpenFlags: OptionSet, Sendable {
        package let rawValue: Int32
        package init(rawValue: Int32) { self.rawValue = rawValue }

        /// O_RDONLY (zero: the absence of the write flags).
        package static let readOnly = OpenFlags([])
        package static let writeOnly = OpenFlags(rawValue: O_WRONLY)
        package static let readWrite = OpenFlags(rawValue: O_RDWR)
        package static let create = OpenFlags(rawValue: O_CREAT)
        /// With `create`: fail when the file exists.
        package static let exclusive = OpenFlags(rawValue: O_EXCL)
        package static let truncate = OpenFlags(rawValue: O_TRUNC)
        package static let append = OpenFlags(rawValue: O_APPEND)
        package static let directory = OpenFlags(rawValue: O_DIRECTORY)
        /// Bypass the page cache (O_DIRECT): offsets, lengths and buffers 4 KiB-aligned.
        package static let direct = OpenFlags(rawValue: coffre_O_DIRECT)
    }

    package static func open(_ path: String, _ flags: OpenFlags, mode: UInt32 = 0o644) throws(CoffreError) -> Int32 {
        let fd = Glibc.open(path, flags.rawValue | O_CLOEXEC, mode_t(mode))
        if fd < 0 { throw CoffreError.io("open", path, errno: errno) }
        return fd
    }

    /// Opens a file; nil when it does not exist.
    package static func openIfPresent(_ path: String, _ flags: OpenFlags) throws(CoffreError) -> Int32? {
        let fd = Glibc.open(path, flags.rawValue | O_CLOEXEC, 0)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw CoffreError.io("open", path, errno: errno)
        }
        return fd
    }

    /// Creates a new file for writing; nil when one exists already. With `makingParent`, a
    /// missing parent folder is created (one level) and the creation tried again.
    package static func createIfAbsent(_ path: String, mode: UInt32 = 0o644, makingParent: Bool = false) throws(CoffreError) -> Int32? {
        var fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(mode))
        if fd < 0 && errno == ENOENT && makingParent {
            try makeDirectory(directoryName(path))
            fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(mode))
        }
        if fd < 0 {
            if errno == EEXIST { return nil }
            throw CoffreError.io("create", path, errno: errno)
        }
        return fd
    }

    /// Opens a file; -1 where it cannot be (a file system without O_DIRECT refuses it).
    package static func openOptional(_ path: String, _ flags: OpenFlags) -> Int32 {
        Glibc.open(path, flags.rawValue | O_CLOEXEC, 0)
    }

    package static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Reads exactly `buffer.count` bytes at `offset`; bytes past end of file read as zeros.
    package static func pread(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: Int64, path: String) throws(CoffreError) {
        var done = 0
        while done < buffer.count {
            let n = Glibc.pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw CoffreError.io("read", path, errno: errno)
            }
            if n == 0 {
                (buffer.baseAddress! + done).initializeMemory(as: UInt8.self, repeating: 0, count: buffer.count - done)
                return
            }
            done += n
        }
    }

    /// Writes all of `buffer` at `offset`.
    package static func pwrite(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: Int64, path: String) throws(CoffreError) {
        var done = 0
        while done < buffer.count {
            let n = Glibc.pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw CoffreError.io("write", path, errno: errno)
            }
            done += n
        }
    }

    /// Writes `bytes` at offset 0.
    package static func write(_ fd: Int32, _ bytes: [UInt8], path: String) throws(CoffreError) {
        try bytes.withUnsafeBytes { raw in Result { () throws(CoffreError) in try pwrite(fd, raw, at: 0, path: path) } }.get()
    }

    /// Appends to a file, creating it (with `mode`) when missing.
    package static func append(_ bytes: [UInt8], to path: String, mode: UInt32 = 0o600) throws(CoffreError) {
        let fd = try open(path, [.writeOnly, .append, .create], mode: mode)
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CoffreError.io("append to", path, errno: errno)
            }
            done += n
        }
    }

    package static func fsync(_ fd: Int32, path: String) throws(CoffreError) {
        if Glibc.fsync(fd) != 0 { throw CoffreError.io("fsync", path, errno: errno) }
    }

    /// Makes a file's data durable by its path.
    package static func fsyncFile(_ path: String) throws(CoffreError) {
        let fd = try open(path, .readOnly)
        defer { close(fd) }
        try fsync(fd, path: path)
    }

    /// Makes a folder's entries (creations, renames, removals) durable.
    package static func fsyncDirectory(_ path: String) throws(CoffreError) {
        let fd = try open(path, [.readOnly, .directory])
        defer { close(fd) }
        try fsync(fd, path: path)
    }

    /// syncfs(2): flushes every dirty page of the file system holding `path`.
    package static func syncFileSystem(of path: String) throws(CoffreError) {
        let fd = try open(path, [.readOnly, .directory])
        defer { close(fd) }
        if coffre_syncfs(fd) != 0 { throw CoffreError.io("syncfs", path, errno: errno) }
    }

    /// Starts writing a file's dirty pages to disk without waiting (`sync_file_range`): a later
    /// `syncFileSystem` finds most of them written. Best effort: errors are ignored.
    package static func startWriteback(_ fd: Int32) {
        _ = coffre_start_writeback(fd)
    }

    package static func truncate(_ fd: Int32, to size: Int64, path: String) throws(CoffreError) {
        if ftruncate(fd, off_t(size)) != 0 { throw CoffreError.io("truncate", path, errno: errno) }
    }

    // MARK: Whole files

    /// Reads a whole file (to its end, whatever its stated size: `/proc` files say 0); nil
    /// when it does not exist. Opened read-only: safe on a frozen file system.
    package static func readFile(_ path: String) throws(CoffreError) -> [UInt8]? {
        guard let fd = try openIfPresent(path, .readOnly) else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw CoffreError.io("stat", path, errno: errno) }
        var bytes = [UInt8](repeating: 0, count: max(Int(st.st_size), 4096))
        var count = 0
        while true {
            if count == bytes.count { bytes += [UInt8](repeating: 0, count: bytes.count) }
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CoffreError.io("read", path, errno: errno)
            }
            if n == 0 { break }
            count += n
        }
        bytes.removeSubrange(count...)
        return bytes
    }

    /// Reads a whole file that must exist (`readFile` otherwise).
    package static func readExistingFile(_ path: String) throws(CoffreError) -> [UInt8] {
        guard let bytes = try readFile(path) else { throw CoffreError.io("open", path, errno: ENOENT) }
        return bytes
    }

    /// Crash-safe replace: a temp file in the same folder, fsync, rename, fsync the folder.
    /// Readers see the old contents or the new ones, never a mix, even across a power cut.
    package static func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: UInt32 = 0o644) throws(CoffreError) {
        let dir = directoryName(path)
        let tmp = "\(dir)/.tmp-\(baseName(path))-\(randomHex(6))"
        let fd = try open(tmp, [.writeOnly, .create, .exclusive], mode: mode)
        var open = true
        do throws(CoffreError) {
            try write(fd, bytes, path: tmp)
            // The umask may have narrowed the mode; the caller asked for exactly this one.
            if fchmod(fd, mode_t(mode)) != 0 { throw CoffreError.io("chmod", tmp, errno: errno) }
            try fsync(fd, path: tmp)
            close(fd)
            open = false
            try rename(tmp, to: path)
            try fsyncDirectory(dir)
        } catch {
            if open { close(fd) }
            unlink(tmp)
            throw error
        }
    }

    /// Makes `temporary` durable, then renames it over `final` (same folder: atomic), keeping
    /// the final file's owner and mode, and makes the rename durable.
    package static func replace(_ final: String, with temporary: String) throws(CoffreError) {
        var info = stat()
        if stat(final, &info) == 0 {
            _ = chown(temporary, info.st_uid, info.st_gid)
            _ = chmod(temporary, info.st_mode & 0o7777)
        }
        try fsyncFile(temporary)
        try rename(temporary, to: final)
        try fsyncDirectory(directoryName(final))
    }

    // MARK: Entries

    package static func rename(_ from: String, to: String) throws(CoffreError) {
        if Glibc.rename(from, to) != 0 { throw CoffreError.io("rename \(from) to", to, errno: errno) }
    }

    /// Renames; false when `from` does not exist.
    package static func renameIfPresent(_ from: String, to: String) throws(CoffreError) -> Bool {
        if Glibc.rename(from, to) == 0 { return true }
        if errno == ENOENT { return false }
        throw CoffreError.io("rename \(from) to", to, errno: errno)
    }

    /// Gives `from` the second name `to` unless `to` exists (then false): an atomic create-if-absent.
    package static func linkIfAbsent(_ from: String, to: String) throws(CoffreError) -> Bool {
        if Glibc.link(from, to) == 0 { return true }
        if errno == EEXIST { return false }
        throw CoffreError.io("link \(from) to", to, errno: errno)
    }

    /// Removes a file or a symbolic link.
    package static func remove(_ path: String) throws(CoffreError) {
        if Glibc.unlink(path) != 0 { throw CoffreError.io("unlink", path, errno: errno) }
    }

    /// Removes a file when it is there; errors are ignored (clean-up paths).
    package static func unlink(_ path: String) {
        _ = Glibc.unlink(path)
    }

    /// Creates one folder; an existing one is fine.
    package static func makeDirectory(_ path: String, mode: UInt32 = 0o755) throws(CoffreError) {
        if mkdir(path, mode_t(mode)) != 0 && errno != EEXIST { throw CoffreError.io("mkdir", path, errno: errno) }
    }

    /// Creates a folder and its missing parents (`mode` for new ones), touching nothing that
    /// already exists: even `mkdir` of an existing folder blocks on a frozen file system.
    package static func makeDirectories(_ path: String, mode: UInt32 = 0o755) throws(CoffreError) {
        if isDirectory(path) { return }
        let parent = directoryName(path)
        if parent != path && parent != "." { try makeDirectories(parent, mode: mode) }
        try makeDirectory(path, mode: mode)
    }

    /// Names in a folder (no `.`/`..`); empty when it does not exist.
    package static func list(_ path: String) throws(CoffreError) -> [String] {
        guard let dir = opendir(path) else {
            if errno == ENOENT { return [] }
            throw CoffreError.io("opendir", path, errno: errno)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Names in a folder without dot-files, sorted; empty when it cannot be read.
    package static func visibleEntries(_ path: String) -> [String] {
        ((try? list(path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    /// Removes a file or a folder tree; nothing when it is absent.
    package static func removeTree(_ path: String) throws(CoffreError) {
        guard let status = linkStatus(path) else { return }
        if status.kind == .directory {
            for name in try list(path) { try removeTree("\(path)/\(name)") }
            if rmdir(path) != 0 && errno != ENOENT { throw CoffreError.io("rmdir", path, errno: errno) }
        } else if Glibc.unlink(path) != 0 && errno != ENOENT {
            throw CoffreError.io("unlink", path, errno: errno)
        }
    }

    /// Sets a file's modification time to now; false when it does not exist.
    package static func touch(_ path: String) throws(CoffreError) -> Bool {
        if utimensat(AT_FDCWD, path, nil, 0) == 0 { return true }
        if errno == ENOENT { return false }
        throw CoffreError.io("touch", path, errno: errno)
    }

    // MARK: Status

    /// What `stat` says of a file, in the words Coffre uses.
    package struct Status: Sendable {
        package enum Kind: Sendable { case regular, directory, blockDevice, symbolicLink, other }
        package var kind: Kind
        package var size: Int64
        package var uid: UInt32
        /// The permission bits (mode & 0o7777).
        package var permissions: UInt32
        /// Seconds since the epoch.
        package var modificationTime: Double

        init(_ st: stat) {
            switch st.st_mode & S_IFMT {
            case S_IFREG: kind = .regular
            case S_IFDIR: kind = .directory
            case S_IFBLK: kind = .blockDevice
            case S_IFLNK: kind = .symbolicLink
            default: kind = .other
            }
            size = Int64(st.st_size)
            uid = st.st_uid
            permissions = UInt32(st.st_mode) & 0o7777
            modificationTime = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
        }
    }

    /// The file `path` names, following symbolic links; nil when there is none.
    package static func status(_ path: String) -> Status? {
        var st = stat()
        return stat(path, &st) == 0 ? Status(st) : nil
    }

    /// The entry at `path` itself (a symbolic link is not followed); nil when there is none.
    package static func linkStatus(_ path: String) -> Status? {
        var st = stat()
        return lstat(path, &st) == 0 ? Status(st) : nil
    }

    /// An open file's status.
    package static func status(of fd: Int32, path: String) throws(CoffreError) -> Status {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw CoffreError.io("stat", path, errno: errno) }
        return Status(st)
    }

    /// Whether `path` names a file (symbolic links followed).
    package static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Whether anything, even a dangling symbolic link, is at `path`.
    package static func hasEntry(_ path: String) -> Bool { linkStatus(path) != nil }

    package static func isDirectory(_ path: String) -> Bool { status(path)?.kind == .directory }

    package static func isExecutable(_ path: String) -> Bool {
        status(path)?.kind == .regular && access(path, X_OK) == 0
    }

    /// Gives a file or folder to a system user (QEMU's `libvirt-qemu`); false when there is
    /// no such user (nothing to do).
    package static func giveToUser(_ path: String, user: String) throws(CoffreError) -> Bool {
        guard let account = getpwnam(user) else { return false }
        if chown(path, account.pointee.pw_uid, account.pointee.pw_gid) != 0 {
            throw CoffreError.io("chown \(user)", path, errno: errno)
        }
        return true
    }

    // MARK: Locks

    /// An advisory whole-file lock (flock(2)): held by the descriptor, released when it closes
    /// or the process dies.
    package enum LockKind: Sendable {
        case shared, exclusive
        var operation: Int32 { self == .shared ? LOCK_SH : LOCK_EX }
    }

    /// Waits until the lock is granted.
    package static func lock(_ fd: Int32, _ kind: LockKind, path: String) throws(CoffreError) {
        while coffre_flock(fd, kind.operation) != 0 {
            if errno == EINTR { continue }
            throw CoffreError.io("lock", path, errno: errno)
        }
    }

    /// Takes the lock if nobody holds a conflicting one; false when somebody does.
    package static func tryLock(_ fd: Int32, _ kind: LockKind, path: String) throws(CoffreError) -> Bool {
        while coffre_flock(fd, kind.operation | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            if errno == EWOULDBLOCK { return false }
            throw CoffreError.io("lock", path, errno: errno)
        }
        return true
    }

    package static func unlock(_ fd: Int32) {
        _ = coffre_flock(fd, LOCK_UN)
    }

    // MARK: Paths

    package static func directoryName(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    package static func baseName(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return String(trimmed) }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    /// An absolute path (relative ones from the working directory), without a trailing slash.
    package static func absolutePath(_ path: String) -> String {
        var result = path
        if !path.hasPrefix("/") {
            let cwd = currentDirectory()
            result = path == "." || path.isEmpty ? cwd : "\(cwd)/\(path)"
        }
        while result.count > 1 && result.hasSuffix("/") { result.removeLast() }
        return result
    }

    package static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Random lowercase hex from the system's CSPRNG: unique names for staging files.
package func randomHex(_ bytes: Int) -> String {
    var g = SystemRandomNumberGenerator()
    return (0..<bytes).map { _ in
        let v = UInt8.random(in: 0...255, using: &g)
        return String(v >> 4, radix: 16) + String(v & 0xF, radix: 16)
    }.joined()
}
