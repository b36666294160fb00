import CoffreCore
import CoffreSystem
import Foundation

/// One line of `/proc/self/mountinfo`.
public struct Mount: Sendable, Equatable {
    /// `major:minor` of the device: one superblock, however many times it is mounted.
    public var device: String
    /// Where it is mounted (a host path).
    public var mountPoint: String
    /// ext4, xfs, …
    public var fileSystemType: String
    /// /dev/sda1, /dev/loop0, …
    public var source: String
    /// Per-mount options (rw, ro, relatime, …).
    public var options: [String]

    /// Describes a mount.
    public init(device: String, mountPoint: String, fileSystemType: String, source: String, options: [String] = ["rw"]) {
        self.device = device
        self.mountPoint = mountPoint
        self.fileSystemType = fileSystemType
        self.source = source
        self.options = options
    }

    /// Loop devices (major 7) hold file systems whose backing file lives on another file
    /// system; freezing both can deadlock, so a real guest leaves them alone, as Azure does.
    public var isLoopDevice: Bool { device.hasPrefix("7:") || source.hasPrefix("/dev/loop") }
}

/// The mounts of this machine and which of them a `prepare` freezes (issue 4, item 5).
public enum MountTable {
    /// The file systems whose FIFREEZE makes a consistent snapshot.
    public static let freezableTypes: Set<String> = ["ext3", "ext4", "xfs", "btrfs"]

    /// Parses mountinfo text; lines that do not parse are skipped.
    public static func parse(_ text: String) -> [Mount] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            // id parent major:minor root mountpoint options [optional…] - type source superoptions
            guard fields.count >= 10, let dash = fields.firstIndex(of: "-"), dash >= 6, dash + 2 < fields.count else { return nil }
            return Mount(device: fields[2], mountPoint: unescape(fields[4]), fileSystemType: fields[dash + 1],
                         source: unescape(fields[dash + 2]), options: fields[5].split(separator: ",").map(String.init))
        }
    }

    /// This process's view of the mounts.
    public static func current() throws(CoffreError) -> [Mount] {
        parse(String(decoding: try FileIO.readExistingFile("/proc/self/mountinfo"), as: UTF8.self))
    }

    /// The mounts to freeze, in freeze order (deepest first, so `/` is last); thaw in reverse.
    ///
    /// Only writable ext3/ext4/xfs/btrfs mounts under the root count; a mount hidden under
    /// another one at the same place is left out (it cannot be reached by its path), and a
    /// device mounted twice (bind mounts, btrfs subvolumes) is frozen once, through its
    /// shortest path. Loop devices are skipped in a real guest (root `/`); under another root
    /// the caller chose the scope, and a test's loop-mounted image is what it wants frozen.
    /// - Parameter skip: guest mount points never to freeze.
    public static func selectForFreeze(_ mounts: [Mount], paths: GuestPaths, skip: [String]) -> [Mount] {
        // The last mount at a path is the visible one.
        var visible: [String: Mount] = [:]
        var order: [String] = []
        for mount in mounts {
            if visible[mount.mountPoint] == nil { order.append(mount.mountPoint) }
            visible[mount.mountPoint] = mount
        }
        let skipped = Set(skip.map { GuestPaths(root: $0).root })
        var byDevice: [String: Mount] = [:]
        for point in order {
            let mount = visible[point]!
            guard freezableTypes.contains(mount.fileSystemType),
                  !mount.options.contains("ro"),
                  let guestPoint = paths.guest(mount.mountPoint),
                  !skipped.contains(guestPoint),
                  !(paths.isSystemRoot && mount.isLoopDevice)
            else { continue }
            if let other = byDevice[mount.device], other.mountPoint.count <= mount.mountPoint.count { continue }
            byDevice[mount.device] = mount
        }
        return byDevice.values.sorted { a, b in
            let (da, db) = (depth(a.mountPoint), depth(b.mountPoint))
            return da != db ? da > db : a.mountPoint < b.mountPoint
        }
    }

    private static func depth(_ path: String) -> Int { path == "/" ? 0 : path.split(separator: "/").count }

    /// mountinfo writes space, tab, newline and backslash as \040, \011, \012, \134.
    static func unescape(_ field: String) -> String {
        guard field.contains("\\") else { return field }
        var bytes: [UInt8] = []
        let raw = Array(field.utf8)
        var i = 0
        while i < raw.count {
            if raw[i] == UInt8(ascii: "\\"), i + 3 < raw.count,
               let value = UInt8(String(decoding: raw[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                bytes.append(value)
                i += 4
            } else {
                bytes.append(raw[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
