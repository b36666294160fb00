public import CoffreCore

/// One line of `/proc/self/mountinfo`.
public struct Mount: Sendable, Equatable {
    /// The mount's id, and its parent's.
    public var id: Int
    public var parent: Int
    /// `major:minor` of the device: one superblock, however many times it is mounted.
    public var device: String
    /// Where it is mounted (a host path).
    public var mountPoint: String
    /// ext4, xfs, fuse.coffre, …
    public var fileSystemType: String
    /// /dev/sda1, /dev/loop0, …
    public var source: String
    /// Per-mount options (rw, ro, relatime, …).
    public var options: [String]

    /// Describes a mount.
    public init(device: String, mountPoint: String, fileSystemType: String, source: String, options: [String] = ["rw"],
                id: Int = 0, parent: Int = 0) {
        self.id = id
        self.parent = parent
        self.device = device
        self.mountPoint = mountPoint
        self.fileSystemType = fileSystemType
        self.source = source
        self.options = options
    }
}

/// The kernel's table of mounts (mountinfo(5)), for the freezer and for mounts of points.
public enum MountInfo {
    /// Parses mountinfo text, in the kernel's order (parents before children); lines that do
    /// not parse are skipped.
    public static func parse(_ text: String) -> [Mount] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            // id parent major:minor root mountpoint options [optional…] - type source superoptions
            guard fields.count >= 10, let id = Int(fields[0]), let parent = Int(fields[1]),
                  let dash = fields.firstIndex(of: "-"), dash >= 6, dash + 2 < fields.count
            else { return nil }
            return Mount(device: fields[2], mountPoint: unescape(fields[4]), fileSystemType: unescape(fields[dash + 1]),
                         source: unescape(fields[dash + 2]), options: fields[5].split(separator: ",").map(String.init),
                         id: id, parent: parent)
        }
    }

    /// This process's view of the mounts.
    public static func current() throws(CoffreError) -> [Mount] {
        parse(String(decoding: try FileIO.readExistingFile("/proc/self/mountinfo"), as: UTF8.self))
    }

    /// mountinfo writes space, tab, newline and backslash as \040, \011, \012, \134.
    static func unescape(_ field: String) -> String {
        guard field.contains("\\") else { return field }
        var bytes: [UInt8] = []
        let raw = Array(field.utf8)
        var i = 0
        while i < raw.count {
            if raw[i] == UInt8(ascii: "\\"), i + 3 < raw.count,
               let value = UInt8(String(decoding: raw[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                bytes.append(value)
                i += 4
            } else {
                bytes.append(raw[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
