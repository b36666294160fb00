import CShims
#if canImport(Glibc)
import Glibc
#endif

extension FileIO {
    /// The ranges inside `range` that hold data (SEEK_DATA/SEEK_HOLE); `[range]` where the
    /// file system cannot tell, which is always correct, only slower to read.
    package static func dataExtents(_ fd: Int32, in range: Range<Int64>) -> [Range<Int64>] {
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

    /// `_IOW(0x94, 9, int)`: clone the whole source file into the destination.
    private static let ficlone: UInt = 0x4004_9409

    /// Makes `destination` share `source`'s extents (a reflink, FICLONE); false where the file
    /// system cannot (ext4), and the caller copies.
    package static func cloneFile(_ source: Int32, into destination: Int32) -> Bool {
        ioctl(destination, ficlone, source) == 0
    }

    /// Whether all bytes of `buffer` are zero.
    package static func isZero(_ buffer: UnsafeRawBufferPointer) -> Bool {
        buffer.isEmpty || coffre_is_zero(buffer.baseAddress, buffer.count) != 0
    }

    /// A file's length found by seeking to its end (regular files and block devices alike);
    /// nil when the descriptor cannot seek.
    package static func seekEnd(_ fd: Int32) -> Int64? {
        let end = lseek(fd, 0, SEEK_END)
        return end >= 0 ? Int64(end) : nil
    }
}
