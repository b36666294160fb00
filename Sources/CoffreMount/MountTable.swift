import CoffreCore
import CoffreSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The mounts and loop devices a point's mount leaves behind.
package enum MountTable {
    /// The mounts of this process's namespace, in the kernel's order (parents before children).
    package static func read() throws -> [Mount] {
        try MountInfo.current()
    }

    /// Mounts at `path` or below it, deepest first (the order to unmount them in).
    package static func mounts(atOrBelow path: String, in entries: [Mount]) -> [Mount] {
        let prefix = path.hasSuffix("/") ? path : path + "/"
        return entries
            .filter { $0.mountPoint == path || $0.mountPoint.hasPrefix(prefix) }
            .sorted { ($0.mountPoint.split(separator: "/").count, $0.id) > ($1.mountPoint.split(separator: "/").count, $1.id) }
    }

    /// Loop devices whose backing file is `path` or below it: /dev/loopN.
    package static func loopDevices(backedBelow path: String) -> [String] {
        let prefix = path.hasSuffix("/") ? path : path + "/"
        return FileIO.visibleEntries("/sys/block").filter { $0.hasPrefix("loop") }.compactMap { name in
            guard let bytes = try? FileIO.readFile("/sys/block/\(name)/loop/backing_file") else { return nil }
            var file = String(decoding: bytes, as: UTF8.self)
            while file.hasSuffix("\n") { file.removeLast() }
            // A backing file that went away reads "… (deleted)".
            if file.hasSuffix(" (deleted)") { file.removeLast(" (deleted)".count) }
            return file == path || file.hasPrefix(prefix) ? "/dev/" + name : nil
        }
    }
}
