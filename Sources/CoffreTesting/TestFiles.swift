#if canImport(Glibc)
import Glibc
#endif
public import CoffreCore

/// Files that tests write and then run.
public enum TestFiles {
    /// Writes `text` to `path` (created or truncated) with `mode`, through a descriptor opened
    /// with O_CLOEXEC. Foundation's `Data.write(to:)` opens without it: a child that a test
    /// running in parallel spawns meanwhile inherits the descriptor and holds the file open for
    /// writing as long as it lives, and running the file then fails with ETXTBSY.
    public static func write(_ text: String, to path: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw CoffreError.io("open", path, errno: errno) }
        defer { close(fd) }
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw CoffreError.io("write", path, errno: errno) }
            bytes = bytes.dropFirst(n)
        }
        guard fchmod(fd, mode) == 0 else { throw CoffreError.io("chmod", path, errno: errno) }
    }
}
