import CShims
#if canImport(Glibc)
import Glibc
#endif

/// A clock that never jumps: deadlines survive the machine's (or the guest's) clock being set.
package enum Monotonic {
    /// Seconds since an arbitrary origin (CLOCK_BOOTTIME, which counts suspended time too).
    package static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_BOOTTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Sleeps the calling thread, resuming after signals. **Blocks**: never call it on
    /// Swift's cooperative threads.
    package static func sleep(_ seconds: Double) {
        guard seconds > 0 else { return }
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}

/// The wall clock as the kernel sees it.
package enum WallClock {
    /// Whether the kernel takes the clock for synchronized (an NTP client keeps it in step);
    /// nil when it cannot tell.
    package static var isSynchronized: Bool? {
        switch coffre_clock_synchronized() {
        case 1: true
        case 0: false
        default: nil
        }
    }
}
