#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CoffreCore
import Foundation

/// The few file operations the agent needs, on raw system calls: which ones write matters,
/// because any write to a frozen file system blocks until it thaws (even `mkdir` of an
/// existing folder and opening an existing file for writing do).
enum FileSystem {
    /// Owner, permission bits and kind of a file, following symbolic links.
    struct Status {
        var uid: UInt32
        var permissions: UInt32
        var isRegular: Bool
        var isDirectory: Bool
        var size: Int64
    }

    static func status(_ path: String) -> Status? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        let kind = UInt32(st.st_mode) & UInt32(S_IFMT)
        return Status(uid: st.st_uid, permissions: UInt32(st.st_mode) & 0o7777,
                      isRegular: kind == UInt32(S_IFREG), isDirectory: kind == UInt32(S_IFDIR),
                      size: Int64(st.st_size))
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Reads a whole file, opened read-only (safe on a frozen file system).
    static func read(_ path: String) throws(CoffreError) -> Data {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io("Opening", path, errno: errno) }
        defer { close(fd) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io("Reading", path, errno: errno)
            }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return data
    }

    /// Creates a folder and its parents (mode 0700 for new ones), touching nothing that
    /// already exists: `mkdir` on an existing folder of a frozen file system would block.
    static func makeDirectories(_ path: String) throws(CoffreError) {
        if status(path)?.isDirectory == true { return }
        let parent = (path as NSString).deletingLastPathComponent
        if parent != path && !parent.isEmpty { try makeDirectories(parent) }
        if mkdir(path, 0o700) != 0 && errno != EEXIST { throw .io("Creating folder", path, errno: errno) }
    }

    /// Replaces a file's contents all at once: write a temporary file, fsync, rename over.
    static func writeAtomically(_ data: Data, to path: String, mode: mode_t = 0o600) throws(CoffreError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .io("Creating", temporary, errno: errno) }
        var failure: Int32 = 0
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                offset += n
            }
        }
        if failure == 0 && fsync(fd) != 0 { failure = errno }
        close(fd)
        if failure != 0 {
            unlink(temporary)
            throw .io("Writing", temporary, errno: failure)
        }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw .io("Renaming", temporary, errno: code)
        }
    }

    /// Appends to a file, creating it (mode 0600) when missing.
    static func append(_ data: Data, to path: String) throws(CoffreError) {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io("Opening", path, errno: errno) }
        defer { close(fd) }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 { throw .io("Writing", path, errno: errno) }
    }
}
