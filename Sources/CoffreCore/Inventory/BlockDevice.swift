/// A disk to back up, seen as a byte range: a raw image file, a fabric snapshot, an NBD export.
///
/// Implementations must be safe to read from several threads at once (`pread` semantics).
public protocol BlockDevice: Sendable {
    /// The disk's name inside a recovery point (a raw file's base name).
    var name: String { get }
    /// Size in bytes.
    var size: Int64 { get }
    /// The ranges inside `range` that may hold data; everything else reads as zeros and is
    /// skipped. Returning `[range]` is always correct, only slower.
    func dataExtents(in range: Range<Int64>) throws -> [Range<Int64>]
    /// Fills `buffer` with the bytes at `offset` (holes read as zeros).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws
}

/// Names accepted for items and disks: safe as file names on every platform we support.
public enum Naming {
    public static func isValid(_ name: String) -> Bool {
        guard (1...128).contains(name.utf8.count), !name.hasPrefix(".") else { return false }
        return name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == 0x2E || c == 0x5F || c == 0x2D
        }
    }
}

/// A disk that knows which ranges were written since an earlier recovery point (changed-block
/// tracking: a hypervisor's dirty bitmap). The vault reads only those ranges and takes every
/// other block from that point, without reading it.
///
/// The vault uses the changes only when `changesSince` is the point it compares with (the
/// item's latest point) and that point has a disk of the same name and size; otherwise it
/// reads the data extents as for any disk (a resync: slower, still deduplicated).
public protocol ChangeTrackingDevice: BlockDevice {
    /// The recovery point the changes are counted from.
    var changesSince: String { get }
    /// The ranges inside `range` written since `changesSince`; the rest is as in that point.
    /// Returning `[range]` is always correct, only slower.
    func changedExtents(in range: Range<Int64>) throws -> [Range<Int64>]
}
