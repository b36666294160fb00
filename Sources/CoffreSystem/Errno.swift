public import CoffreCore
#if canImport(Glibc)
import Glibc
#endif

/// strerror, as a Swift string.
public func errnoDescription(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
}

/// The errno values other modules tell apart, by name (they do not import Glibc).
package enum Errno {
    package static let noSuchFile = ENOENT
}

extension CoffreError {
    /// A system call failed on a file.
    public static func io(_ operation: String, _ path: String, errno code: Int32) -> CoffreError {
        CoffreError(.ioError, "\(operation) \(path) failed: \(errnoDescription(code))",
                    workaround: "Check free space, permissions and the health of the file system",
                    cause: SystemCallError(errno: code))
    }
}

/// The errno of a failed system call, kept as a `CoffreError`'s cause.
public struct SystemCallError: Error, Sendable, Equatable, CustomStringConvertible {
    public var errno: Int32
    public init(errno: Int32) { self.errno = errno }
    public var description: String { "errno \(errno) (\(errnoDescription(errno)))" }
}
