public import CoffreCore
import CShims
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
            close(fd)
            throw CoffreError.diskNotFound(path, reason: errnoDescription(code))
        }
        let kind = st.st_mode & S_IFMT
        var size = Int64(st.st_size)
        if kind == S_IFBLK {
            size = Int64(lseek(fd, 0, SEEK_END))
        } else if kind != S_IFREG {
            close(fd)
            throw CoffreError.diskNotFound(path, reason: "not a regular file or block device")
        }
        self.fd = fd
        self.path = path
        self.size = size
        self.name = FileIO.baseName(path)
    }

    deinit { close(fd) }

    public func dataExtents(in range: Range<Int64>) throws -> [Range<Int64>] {
        var extents: [Range<Int64>] = []
        var position = range.lowerBound
        while position < range.upperBound {
            let data = lseek(fd, off_t(position), coffre_SEEK_DATA)
            if data < 0 {
                if errno == ENXIO { break }  // only a hole remains
                return [range]  // SEEK_DATA unsupported: read everything
            }
            if Int64(data) >= range.upperBound { break }
            var hole = lseek(fd, off_t(data), coffre_SEEK_HOLE)
            if hole < 0 { hole = off_t(range.upperBound) }
            extents.append(Int64(data)..<min(Int64(hole), range.upperBound))
            position = Int64(hole)
        }
        return extents
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws {
        try FileIO.pread(fd, buffer, at: offset, path: path)
    }
}
