import CoffreCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The folder-level file operations the fabric needs beyond Foundation. Durable writes and
/// fsyncs are CoffreStorage's `FileIO`, shared with the vault.
enum FabricFiles {
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
