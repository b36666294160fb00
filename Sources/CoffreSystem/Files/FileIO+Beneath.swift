import CShims
#if canImport(Glibc)
import Glibc
#endif

extension FileIO {
    /// O_PATH: a descriptor that names a file without opening it (a directory to resolve
    /// below, a symbolic link itself with O_NOFOLLOW).
    package static let pathOnly = coffre_O_PATH

    /// Opens `path`, relative to the directory `directory`, such that resolving it can never
    /// leave that directory: no `..` above it, no absolute symbolic link, no /proc magic link,
    /// no crossing into another mount (openat2(2), RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
    /// RESOLVE_NO_XDEV). Returns the descriptor, or the errno: EXDEV for an escape.
    package static func openBeneath(_ directory: Int32, _ path: String, flags: Int32) -> Result<Int32, SystemCallError> {
        let fd = coffre_open_beneath(directory, path, flags)
        return fd >= 0 ? .success(fd) : .failure(SystemCallError(errno: errno))
    }
}
