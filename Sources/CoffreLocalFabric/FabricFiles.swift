import CoffreCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The few file operations the fabric needs beyond Foundation: durable writes and renames.
///
/// CoffreStorage's `FileIO` does the same for the vault but is internal to that module.
enum FabricFiles {
    /// Crash-safe replace of a small file: temp file beside it, fsync, rename, fsync the folder.
    static func writeDurably(_ data: Data, to path: String, mode: mode_t = 0o644) throws {
        let folder = (path as NSString).deletingLastPathComponent
        let temp = "\(folder)/.\((path as NSString).lastPathComponent).tmp-\(randomSuffix())"
        let fd = Glibc.open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw CoffreError.io("create", temp, errno: errno) }
        do {
            try data.withUnsafeBytes { bytes in
                var done = 0
                while done < bytes.count {
                    let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw CoffreError.io("write", temp, errno: errno) }
                    done += n
                }
            }
            try sync(fd, temp)
            close(fd)
            try rename(temp, to: path)
            try syncFolder(folder)
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
    }

    static func sync(_ fd: Int32, _ path: String) throws {
        if fsync(fd) != 0 { throw CoffreError.io("fsync", path, errno: errno) }
    }

    /// Flushes a file's data to disk by path.
    static func syncFile(_ path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CoffreError.io("open", path, errno: errno) }
        defer { close(fd) }
        try sync(fd, path)
    }

    /// Makes a rename or a new entry in `folder` survive a crash.
    static func syncFolder(_ folder: String) throws {
        let fd = Glibc.open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw CoffreError.io("open", folder, errno: errno) }
        defer { close(fd) }
        try sync(fd, folder)
    }

    static func rename(_ from: String, to: String) throws {
        if Glibc.rename(from, to) != 0 { throw CoffreError.io("rename \(from) to", to, errno: errno) }
    }

    /// Creates the folder and its missing parents.
    static func makeFolder(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw CoffreError("IOError", "Cannot create the folder \(path): \(error.localizedDescription)",
                              workaround: "Check free space, permissions and the health of the file system")
        }
    }

    /// Removes a file or a folder tree; nothing when it is absent.
    static func remove(_ path: String) throws {
        guard exists(path) else { return }
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            guard exists(path) else { return }  // removed by someone else meanwhile
            throw CoffreError("IOError", "Cannot remove \(path): \(error.localizedDescription)",
                              workaround: "Check permissions, then remove it by hand")
        }
    }

    /// True when something (even a dangling symlink) is at `path`.
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func isFolder(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// Names in a folder, without dot-files; empty when it cannot be read.
    static func visibleEntries(_ folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    /// 12 random hex digits: unique staging names.
    static func randomSuffix() -> String {
        String(UInt64.random(in: 0..<(1 << 48)), radix: 16)
    }

    /// An absolute path with no trailing slash.
    static func absolute(_ path: String) -> String {
        var result = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        while result.count > 1 && result.hasSuffix("/") { result.removeLast() }
        return result
    }
}
