#if canImport(Glibc)
import Glibc
#endif

/// FIFREEZE and FITHAW, the ioctls behind fsfreeze(8), on one mount point.
package enum FileSystemFreeze {
    // _IOWR('X', 119, int) and _IOWR('X', 120, int) from linux/fs.h.
    private static let fifreeze: UInt = 0xC004_5877
    private static let fithaw: UInt = 0xC004_5878

    /// Freezes the file system mounted at `mountPoint`: 0, or the errno.
    package static func freeze(_ mountPoint: String) -> Int32 { ioctl(mountPoint, fifreeze) }

    /// Thaws it: 0, or the errno (EINVAL when it was not frozen).
    package static func thaw(_ mountPoint: String) -> Int32 { ioctl(mountPoint, fithaw) }

    package static let notFrozen = EINVAL
    package static let notMounted = ENOENT

    /// Runs one ioctl on the directory; 0 or an errno value.
    private static func ioctl(_ mountPoint: String, _ request: UInt) -> Int32 {
        // Read-only: opening for writing would itself block on a frozen file system.
        let fd = open(mountPoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        return Glibc.ioctl(fd, request, CInt(0)) == 0 ? 0 : errno
    }
}
