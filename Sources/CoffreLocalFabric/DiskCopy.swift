import CoffreCore
import CoffreStorage
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A point-in-time copy of one disk file: a reflink where the file system shares extents
/// (btrfs, XFS), else a copy of its data extents that keeps holes as holes.
enum DiskCopy {
    struct Result: Sendable {
        var path: String
        var reflinked: Bool
        var bytesCopied: Int64
    }

    /// `_IOW(0x94, 9, int)`: clone the whole source file into the destination.
    static let ficlone: UInt = 0x4004_9409
    static let bufferSize = 1 << 20

    static func clone(_ source: String, to destination: String, cancelled: CancellationFlag) throws -> Result {
        let input = try FileIO.open(source, O_RDONLY)
        defer { close(input) }
        let output = try FileIO.open(destination, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        defer { close(output) }

        if ioctl(output, ficlone, input) == 0 {
            return Result(path: destination, reflinked: true, bytesCopied: 0)
        }
        var st = stat()
        guard fstat(input, &st) == 0 else { throw CoffreError.io("stat", source, errno: errno) }
        let size = Int64(st.st_size)
        guard ftruncate(output, off_t(size)) == 0 else { throw CoffreError.io("truncate", destination, errno: errno) }

        let device = try RawFileDevice(path: source)
        var copied: Int64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 4096)
        defer { buffer.deallocate() }
        for extent in try device.dataExtents(in: 0..<size) {
            var offset = extent.lowerBound
            while offset < extent.upperBound {
                if cancelled.isSet { throw CancellationError() }
                let count = Int(min(Int64(bufferSize), extent.upperBound - offset))
                let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
                try device.read(into: slice, at: offset)
                try FileIO.pwrite(output, UnsafeRawBufferPointer(slice), at: offset, path: destination)
                offset += Int64(count)
                copied += Int64(count)
            }
        }
        return Result(path: destination, reflinked: false, bytesCopied: copied)
    }
}
