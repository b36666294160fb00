import CoffreCore
public import CoffreSystem
import Foundation

extension Mount {
    /// Loop devices (major 7) hold file systems whose backing file lives on another file
    /// system; freezing both can deadlock, so a real guest leaves them alone, as Azure does.
    public var isLoopDevice: Bool { device.hasPrefix("7:") || source.hasPrefix("/dev/loop") }
}

/// The mounts of this machine and which of them a `prepare` freezes (issue 4, item 5).
public enum MountTable {
    /// The file systems whose FIFREEZE makes a consistent snapshot.
    public static let freezableTypes: Set<String> = ["ext3", "ext4", "xfs", "btrfs"]

    /// This process's view of the mounts.
    public static func current() throws(CoffreError) -> [Mount] {
        try MountInfo.current()
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
}
