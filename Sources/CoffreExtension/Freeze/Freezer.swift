#if canImport(Glibc)
import Glibc
#endif
public import CoffreCore

/// FIFREEZE and FITHAW, the ioctls behind fsfreeze(8).
public enum Freezer {
    // _IOWR('X', 119, int) and _IOWR('X', 120, int) from linux/fs.h.
    static let fifreeze: UInt = 0xC004_5877
    static let fithaw: UInt = 0xC004_5878

    /// Freezes each mount point in order. On the first failure, thaws what it froze (in
    /// reverse) and throws, so that nothing is left half-frozen.
    /// - Returns: the mount points frozen, in order.
    public static func freeze(_ mountPoints: [String]) throws(CoffreError) -> [String] {
        var frozen: [String] = []
        for point in mountPoints {
            let code = ioctl(point, fifreeze)
            if code != 0 {
                _ = thaw(frozen.reversed())
                throw .freezeFailed(point, errno: code)
            }
            frozen.append(point)
        }
        return frozen
    }

    /// Thaws each mount point in the order given (pass the freeze order reversed). A file
    /// system that is not frozen (EINVAL) or no longer mounted (ENOENT) is fine: thawing
    /// must be safe to repeat, from `release` and from the watchdog.
    /// - Returns: the thaws that failed otherwise.
    public static func thaw(_ mountPoints: some Sequence<String>) -> [CoffreError] {
        var failures: [CoffreError] = []
        for point in mountPoints {
            let code = ioctl(point, fithaw)
            if code != 0 && code != EINVAL && code != ENOENT {
                failures.append(.thawFailed(point, errno: code))
            }
        }
        return failures
    }

    /// Runs one ioctl on the directory; 0 or an errno value.
    private static func ioctl(_ mountPoint: String, _ request: UInt) -> Int32 {
        // Read-only: opening for writing would itself block on a frozen file system.
        let fd = open(mountPoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        return Glibc.ioctl(fd, request, CInt(0)) == 0 ? 0 : errno
    }
}
