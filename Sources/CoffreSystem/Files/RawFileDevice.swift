public import CoffreCore
#if canImport(Glibc)
import Glibc
#endif

/// A raw disk image file (or block device) read with `pread`; holes found with SEEK_DATA/SEEK_HOLE.
public final class RawFileDevice: BlockDevice {
    public let name: String
    public let size: Int64
    public let path: String
    private let fd: Int32

    public init(path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CoffreError.diskNotFound(path, reason: errnoDescription(errno)) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw CoffreError.diskNotFound(path, reason: errnoDescription(code))
        }
        let kind = st.st_mode & S_IFMT
        var size = Int64(st.st_size)
        if kind == S_IFBLK {
            size = FileIO.seekEnd(fd) ?? size
        } else if kind != S_IFREG {
            Glibc.close(fd)
            throw CoffreError.diskNotFound(path, reason: "not a regular file or block device")
        }
        self.fd = fd
        self.path = path
        self.size = size
        self.name = FileIO.baseName(path)
    }

    deinit { Glibc.close(fd) }

    public func dataExtents(in range: Range<Int64>) throws -> [Range<Int64>] {
        FileIO.dataExtents(fd, in: range)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws {
        try FileIO.pread(fd, buffer, at: offset, path: path)
    }
}
