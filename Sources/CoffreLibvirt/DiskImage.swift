#if Libvirt
import Foundation

/// Reads a disk image's virtual size on this host, for when libvirt cannot tell (a stopped
/// domain whose file is outside any storage pool).
enum DiskImage {
    /// qcow2's magic, `QFI\xfb`, at offset 0; the virtual size is a big-endian UInt64 at 24.
    static let qcow2Magic: [UInt8] = [0x51, 0x46, 0x49, 0xFB]

    /// The size the guest sees: from the qcow2 header, else the raw file's (or block
    /// device's) length. Nil for other formats or an unreadable file.
    static func virtualSize(path: String, format: String?) -> Int64? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: 32)
        let count = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 32, 0) }
        if count == 32, Array(header[0..<4]) == qcow2Magic {
            return Int64(bitPattern: header[24..<32].reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        }
        guard format == nil || format == "raw" else { return nil }
        let end = lseek(fd, 0, SEEK_END)  // works for regular files and block devices alike
        return end >= 0 ? Int64(end) : nil
    }
}
#endif
