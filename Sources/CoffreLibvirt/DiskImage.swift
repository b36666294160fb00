#if Libvirt
import CoffreSystem

/// Reads a disk image's virtual size on this host, for when libvirt cannot tell (a stopped
/// domain whose file is outside any storage pool).
enum DiskImage {
    /// qcow2's magic, `QFI\xfb`, at offset 0; the virtual size is a big-endian UInt64 at 24.
    static let qcow2Magic: [UInt8] = [0x51, 0x46, 0x49, 0xFB]

    /// The size the guest sees: from the qcow2 header, else the raw file's (or block
    /// device's) length. Nil for other formats or an unreadable file.
    static func virtualSize(path: String, format: String?) -> Int64? {
        guard let fd = try? FileIO.open(path, .readOnly) else { return nil }
        defer { FileIO.close(fd) }
        var header = [UInt8](repeating: 0, count: 32)
        // Bytes past the end read as zeros: a file shorter than the header is no qcow2.
        guard (try? header.withUnsafeMutableBytes { try FileIO.pread(fd, $0, at: 0, path: path) }) != nil else { return nil }
        if Array(header[0..<4]) == qcow2Magic {
            return Int64(bitPattern: header[24..<32].reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        }
        guard format == nil || format == "raw" else { return nil }
        return FileIO.seekEnd(fd)  // works for regular files and block devices alike
    }
}
#endif
