import CoffreCore
import CShims
#if canImport(Glibc)
import Glibc
#endif

/// Thin, throwing wrappers over the POSIX calls the vault needs. Every write path in the
/// vault goes through `writeFileAtomically` or the staged-chunk path of `LocalChunkStore`.
/// Package-visible so that other modules of Coffre (the local fabric) share them.
package enum FileIO {
    package static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws -> Int32 {
        let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
        if fd < 0 { throw CoffreError.io("open", path, errno: errno) }
        return fd
    }

    /// Reads exactly `buffer.count` bytes at `offset`; bytes past end of file read as zeros.
    package static func pread(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: Int64, path: String) throws {
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

    package static func pwrite(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: Int64, path: String) throws {
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

    package static func write(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { try pwrite(fd, $0, at: 0, path: path) }
    }

    package static func fsync(_ fd: Int32, path: String) throws {
        if Glibc.fsync(fd) != 0 { throw CoffreError.io("fsync", path, errno: errno) }
    }

    package static func fsyncDirectory(_ path: String) throws {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try fsync(fd, path: path)
    }

    /// Reads a whole file; nil when it does not exist.
    package static func readFile(_ path: String) throws -> [UInt8]? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw CoffreError.io("open", path, errno: errno)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw CoffreError.io("stat", path, errno: errno) }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        try bytes.withUnsafeMutableBytes { try pread(fd, $0, at: 0, path: path) }
        return bytes
    }

    /// Crash-safe replace: temp file in the same directory, fsync, rename, fsync directory.
    package static func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        let dir = directoryName(path)
        let tmp = "\(dir)/.tmp-\(baseName(path))-\(randomHex(6))"
        let fd = try open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode: mode)
        do {
            try write(fd, bytes, path: tmp)
            try fsync(fd, path: tmp)
            close(fd)
            if rename(tmp, path) != 0 { throw CoffreError.io("rename", path, errno: errno) }
            try fsyncDirectory(dir)
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
    }

    package static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws {
        if mkdir(path, mode) != 0 && errno != EEXIST { throw CoffreError.io("mkdir", path, errno: errno) }
    }

    /// Names in a directory (no `.`/`..`); empty when it does not exist.
    package static func list(_ path: String) throws -> [String] {
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

    package static func lstatOrNil(_ path: String) -> stat? {
        var st = stat()
        return lstat(path, &st) == 0 ? st : nil
    }

    package static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    package static func removeTree(_ path: String) {
        guard let st = lstatOrNil(path) else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in (try? list(path)) ?? [] { removeTree("\(path)/\(name)") }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    package static func syncFileSystem(of path: String) throws {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        if coffre_syncfs(fd) != 0 { throw CoffreError.io("syncfs", path, errno: errno) }
    }

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

    package static func absolutePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return path == "." ? cwd : "\(cwd)/\(path)"
    }
}

/// Random lowercase hex from the system's CSPRNG.
func randomHex(_ bytes: Int) -> String {
    var g = SystemRandomNumberGenerator()
    return (0..<bytes).map { _ in
        let v = UInt8.random(in: 0...255, using: &g)
        return String(v >> 4, radix: 16) + String(v & 0xF, radix: 16)
    }.joined()
}
