import CoffreCore
import CoffreSystem

/// A point-in-time copy of one disk file: a reflink where the file system shares extents
/// (btrfs, XFS), else a copy of its data extents that keeps holes as holes.
enum DiskCopy {
    struct Result: Sendable {
        var path: String
        var reflinked: Bool
        var bytesCopied: Int64
    }

    static let bufferSize = 1 << 20

    /// Copies `source` to the new file `destination`. **Blocks**; polls `cancelled` between buffers.
    static func clone(_ source: String, to destination: String, cancelled: CancellationFlag) throws -> Result {
        let input = try FileIO.open(source, .readOnly)
        defer { FileIO.close(input) }
        let output = try FileIO.open(destination, [.writeOnly, .create, .exclusive], mode: 0o600)
        defer { FileIO.close(output) }

        if FileIO.cloneFile(input, into: output) {
            return Result(path: destination, reflinked: true, bytesCopied: 0)
        }
        let size = try FileIO.status(of: input, path: source).size
        try FileIO.truncate(output, to: size, path: destination)

        var copied: Int64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 4096)
        defer { buffer.deallocate() }
        for extent in FileIO.dataExtents(input, in: 0..<size) {
            var offset = extent.lowerBound
            while offset < extent.upperBound {
                if cancelled.isSet { throw CancellationError() }
                let count = Int(min(Int64(bufferSize), extent.upperBound - offset))
                let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
                try FileIO.pread(input, slice, at: offset, path: source)
                try FileIO.pwrite(output, UnsafeRawBufferPointer(slice), at: offset, path: destination)
                offset += Int64(count)
                copied += Int64(count)
            }
        }
        return Result(path: destination, reflinked: false, bytesCopied: copied)
    }
}
