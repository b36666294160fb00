/// The file format a restore writes a disk in (X1 "to raw/qcow2 files").
public enum DiskFormat: String, Codable, Sendable, CaseIterable {
    /// A sparse raw image: the disk's bytes at their offsets, holes where the disk reads zeros.
    case raw
    /// A qcow2 (version 3) image: only the clusters holding data are allocated; what libvirt
    /// needs for checkpoints and incremental backups of the restored VM.
    case qcow2

    /// The file a disk named `disk` is restored to: the disk's own name for raw (as before
    /// formats existed), else the name without a `.raw`/`.img` extension plus `.qcow2`.
    public func fileName(forDisk disk: String) -> String {
        switch self {
        case .raw:
            return disk
        case .qcow2:
            if disk.hasSuffix(".qcow2") { return disk }
            for ext in [".raw", ".img"] where disk.hasSuffix(ext) && disk.count > ext.count {
                return String(disk.dropLast(ext.count)) + ".qcow2"
            }
            return disk + ".qcow2"
        }
    }

    /// Throws `DiskSizeUnaligned` when a disk of `size` bytes cannot be written in this format
    /// exactly: qcow2 counts in 512-byte sectors.
    public func check(disk: String, size: Int64) throws {
        guard self == .qcow2, size % 512 != 0 else { return }
        throw CoffreError(.diskSizeUnaligned,
                          "The disk \(disk) is \(size) bytes, not a multiple of 512: a qcow2 image cannot hold it exactly",
                          workaround: "Restore it as raw (--format raw)")
    }

    /// Parses a user's `--format`/`format` value.
    public init(parsing text: String) throws {
        guard let format = DiskFormat(rawValue: text.lowercased()) else {
            throw CoffreError(.invalidDiskFormat, "Unknown disk format '\(text)'",
                              workaround: "Use one of: \(DiskFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self = format
    }
}
