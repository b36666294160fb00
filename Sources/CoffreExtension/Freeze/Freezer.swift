public import CoffreCore
import CoffreSystem

/// Freezes and thaws file systems in order, as fsfreeze(8) does, never leaving a half-frozen guest.
public enum Freezer {
    /// Freezes each mount point in order. On the first failure, thaws what it froze (in
    /// reverse) and throws, so that nothing is left half-frozen.
    /// - Returns: the mount points frozen, in order.
    public static func freeze(_ mountPoints: [String]) throws(CoffreError) -> [String] {
        var frozen: [String] = []
        for point in mountPoints {
            let code = FileSystemFreeze.freeze(point)
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
            let code = FileSystemFreeze.thaw(point)
            if code != 0 && code != FileSystemFreeze.notFrozen && code != FileSystemFreeze.notMounted {
                failures.append(.thawFailed(point, errno: code))
            }
        }
        return failures
    }
}
