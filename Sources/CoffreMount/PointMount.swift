public import CoffreCore
import CoffreSystem
public import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A point mounted read-only in a folder: its disks as files through FUSE and, with
/// `partitions`, the file systems on them mounted from loop devices over those files.
///
/// Layout of the folder:
/// - without partitions: `DIR/<disk name>`, one file per disk;
/// - with partitions: `DIR/<disk name>/part<N>/` per partition holding a file system (`part0`
///   when the file system fills the whole disk), and the disk files in `DIR/.disks/`.
///
/// Everything is read-only down to the kernel: the FUSE mount is `ro`, the loop devices are
/// read-only, and the file systems are mounted `ro` without journal replay or log recovery, so
/// nothing is ever written to a point. Every mount is `nodev,nosuid` (the file systems also
/// `noexec`): nothing in a guest's image gains rights on the host. Mounting needs root.
///
/// `unmount()` undoes it all; a process killed while mounted leaves mounts that
/// `PointMount.clear` (`coffre unmount`) removes, as does the next mount at the same folder.
public final class PointMount: Sendable {
    public struct Options: Sendable {
        /// Mount the file systems found on the disks.
        public var partitions = false
        /// The time the files show (the point's).
        public var time = Date(timeIntervalSince1970: 0)

        public init(partitions: Bool = false, time: Date = Date(timeIntervalSince1970: 0)) {
            self.partitions = partitions
            self.time = time
        }
    }

    /// A file system found on a disk of the point.
    public struct FileSystem: Sendable, Codable, Equatable {
        public var disk: String
        /// The partition's number, 0 for a file system on the whole disk.
        public var partition: Int
        public var kind: FileSystemKind
        /// Where it starts on the disk, and its length.
        public var offset: Int64
        public var size: Int64
        /// `<disk>/part<N>`, relative to the mount's folder.
        public var path: String
        public var mounted: Bool
        /// Why it is not mounted.
        public var note: String?
    }

    /// The folder, as an absolute path without symbolic links.
    public let directory: String
    public let pointID: String
    /// The point's disks.
    public var disks: [ReadableDisk] { source.readableDisks }
    /// With `partitions`: every partition found, mounted or not.
    public let fileSystems: [FileSystem]
    /// The disks' FUSE file system first, then those of FAT partitions.
    private let exports: [FuseExport]
    private var export: FuseExport { exports[0] }
    private let source: any PointDisks
    private let closed = Atomic(false)

    private init(directory: String, pointID: String, fileSystems: [FileSystem], exports: [FuseExport], disks: any PointDisks) {
        self.directory = directory
        self.pointID = pointID
        self.fileSystems = fileSystems
        self.exports = exports
        self.source = disks
    }

    /// Mounts `disks` at `directory`, an empty folder; the mount owns `disks` and closes them
    /// when it ends. A stale mount of an earlier, killed process at the folder is cleared
    /// first. **Blocks.**
    public static func mount(_ disks: any PointDisks, at directory: String, options: Options) throws -> PointMount {
        var started: [FuseExport] = []
        do {
            let directory = try prepare(directory)
            var fileSystems: [FileSystem] = []
            var tree: [String: DiskTree.Entry] = [:]
            let names = disks.readableDisks.map(\.name)
            if options.partitions {
                tree["/"] = .directory([".disks"] + names)
                tree["/.disks"] = .directory(names)
                for (index, disk) in disks.readableDisks.enumerated() {
                    tree["/.disks/" + disk.name] = .disk(index, size: disk.size)
                    let found = try Self.fileSystems(on: index, of: disks)
                    fileSystems += found
                    tree["/" + disk.name] = .directory(found.map { "part\($0.partition)" })
                    for fs in found { tree["/" + fs.path] = .directory([]) }
                }
            } else {
                tree["/"] = .directory(names)
                for (index, disk) in disks.readableDisks.enumerated() {
                    tree["/" + disk.name] = .disk(index, size: disk.size)
                }
            }
            let export = FuseExport(tree: DiskTree(disks: disks, entries: tree), mountPoint: directory, time: options.time)
            try export.start(source: "coffre:" + disks.pointID)
            started.append(export)
            let kernel = kernelFileSystems()
            for i in fileSystems.indices where fileSystems[i].note == nil {
                let fs = fileSystems[i]
                if fs.kind == .vfat {
                    // Coffre's own FAT reader, over the point: the kernel may have no vfat (decision 0020).
                    do {
                        let index = disks.readableDisks.firstIndex { $0.name == fs.disk }!
                        let volume = try FATVolume(size: fs.size) { offset, count in
                            var bytes = [UInt8](repeating: 0, count: count)
                            let n = try bytes.withUnsafeMutableBytes { try disks.read(disk: index, at: fs.offset + offset, into: $0) }
                            return Array(bytes[0..<n])
                        }
                        let fat = FuseExport(tree: FATTree(volume: volume), mountPoint: directory + "/" + fs.path, time: options.time)
                        try fat.start(source: "coffre:\(disks.pointID):\(fs.path)")
                        started.append(fat)
                    } catch {
                        fileSystems[i].note = "\((error as? CoffreError)?.message ?? "\(error)")"
                    }
                } else {
                    fileSystems[i].note = mountLoop(fs, in: directory, kernel: kernel)
                }
                fileSystems[i].mounted = fileSystems[i].note == nil
            }
            return PointMount(directory: directory, pointID: disks.pointID, fileSystems: fileSystems, exports: started, disks: disks)
        } catch {
            if let main = started.first { try? unmountTree(below: main.mountPoint, lazy: true) }
            started.reversed().forEach { $0.stop() }
            disks.close()
            throw error
        }
    }

    /// A mount dropped without `unmount()` is detached, so libfuse's threads never outlive
    /// the file system they serve.
    deinit {
        try? unmount(lazy: true)
    }

    /// Blocks until the point is unmounted (by `unmount()`, `coffre unmount` or `umount`), or
    /// `timeout` has passed; true when it is.
    public func wait(timeout: DispatchTime = .distantFuture) -> Bool {
        export.wait(timeout: timeout)
    }

    /// The first read of the point that failed (a damaged block), if any.
    public var readFailure: CoffreError? { exports.lazy.compactMap(\.lastError).first }

    /// Unmounts the file systems, then the disks, and releases the point. A file system still in
    /// use fails with `MountBusy` and stays mounted, unless `lazy`: then the kernel detaches
    /// it now and lets go of it once its last user is done. Safe to call twice. **Blocks.**
    public func unmount(lazy: Bool = false) throws {
        guard !closed.load(ordering: .relaxed) else { return }
        if !export.wait(timeout: .now()) {
            try Self.unmountTree(below: directory, lazy: lazy)
        }
        guard !closed.exchange(true, ordering: .relaxed) else { return }
        exports.reversed().forEach { $0.stop() }
        Self.detachLoops(below: directory)
        source.close()
    }

    // MARK: Clearing what a killed mount left

    /// Unmounts whatever a coffre mount at `directory` left, live or stale (its process
    /// killed): the file systems, the disks' FUSE mount, loop devices still bound to them.
    /// Returns what it removed; throws `NotMounted` when there was nothing. **Blocks.**
    @discardableResult
    public static func clear(_ directory: String, lazy: Bool = false) throws -> [String] {
        let path = canonical(directory)
        let entries = try MountTable.read()
        guard let top = entries.last(where: { $0.mountPoint == path }) else {
            let loops = detachLoops(below: path)
            if loops.isEmpty { throw CoffreError.notMounted(path) }
            return loops
        }
        guard isCoffre(top) else { throw CoffreError.notCoffreMount(path, type: top.fileSystemType) }
        let removed = MountTable.mounts(atOrBelow: path, in: entries).map(\.mountPoint)
        try unmountTree(below: path, lazy: lazy, including: true)
        return removed + detachLoops(below: path)
    }

    /// Whether `directory` holds a coffre mount whose process is gone. statvfs always asks the
    /// FUSE server (a stat may be answered from the kernel's cache): "transport endpoint is not
    /// connected" when there is none.
    public static func isStale(_ directory: String) -> Bool {
        var s = statvfs()
        return statvfs(directory, &s) != 0 && errno == ENOTCONN
    }

    /// Unmounts the mounts below `path` deepest first, then `path` itself when `including`.
    /// Below a stale FUSE mount the kernel cannot walk to the inner mounts; a lazy unmount of
    /// the top one detaches the whole tree at once.
    private static func unmountTree(below path: String, lazy: Bool, including: Bool = false) throws {
        var busy: [String] = []
        for entry in MountTable.mounts(atOrBelow: path, in: try MountTable.read()) where including || entry.mountPoint != path {
            if umount2(entry.mountPoint, 0) == 0 { continue }
            let code = errno
            switch code {
            case EINVAL, ENOENT:
                continue  // gone meanwhile
            case EBUSY where lazy:
                _ = umount2(entry.mountPoint, Int32(MNT_DETACH))
            case EBUSY:
                busy.append(entry.mountPoint)
            default:
                // ENOTCONN and the like: the FUSE mount above it is dead.
                _ = umount2(path, Int32(MNT_DETACH))
                return
            }
        }
        if !busy.isEmpty { throw CoffreError.mountBusy(busy) }
    }

    @discardableResult
    private static func detachLoops(below path: String) -> [String] {
        MountTable.loopDevices(backedBelow: path).filter { device in
            (try? HostCommand.run(tool("losetup"), ["-d", device], log: logFile(), missing: CoffreError.toolMissing("losetup")))?.status == 0
        }
    }

    // MARK: Mounting

    /// Resolves the folder and makes sure a mount can go there: a folder, empty, not mounted on
    /// (a stale coffre mount is cleared).
    private static func prepare(_ directory: String) throws -> String {
        let path = canonical(directory)
        if let top = try MountTable.read().last(where: { $0.mountPoint == path }) {
            guard isCoffre(top) else { throw CoffreError.notCoffreMount(path, type: top.fileSystemType) }
            guard isStale(path) else {
                throw CoffreError(.mountPointUnusable, "\(path) already holds a mount of \(top.source)",
                                  workaround: "Unmount it first: coffre unmount \(path)")
            }
            try clear(path, lazy: true)
        }
        guard FileIO.isDirectory(path) else {
            throw CoffreError(.mountPointUnusable, "\(path) is not a folder", workaround: "Create an empty folder to mount on")
        }
        guard FileIO.visibleEntries(path).isEmpty, (try? FileIO.list(path))?.isEmpty ?? true else {
            throw CoffreError(.mountPointUnusable, "\(path) is not empty", workaround: "Mount on an empty folder")
        }
        return path
    }

    private static func fileSystems(on index: Int, of disks: any PointDisks) throws -> [FileSystem] {
        let disk = disks.readableDisks[index]
        func read(_ offset: Int64, _ count: Int) throws -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: count)
            let n = try bytes.withUnsafeMutableBytes { try disks.read(disk: index, at: offset, into: $0) }
            return Array(bytes[0..<n])
        }
        let ranges: [(number: Int, offset: Int64, size: Int64)]
        if let table = try PartitionTable.read(size: disk.size, read) {
            ranges = table.partitions.map { ($0.number, $0.offset, $0.size) }
        } else {
            ranges = [(0, 0, disk.size)]
        }
        return try ranges.compactMap { range in
            let kind = FileSystemKind.probe(try read(range.offset, Int(min(Int64(FileSystemKind.probeLength), range.size))))
            // An empty disk or a blank partition-less one is no file system at all.
            if range.number == 0, kind == .unknown { return nil }
            let note: String? = switch kind {
            case .swap: "swap space, no files"
            case .lvm: "an LVM physical volume: restore the disk and activate it with vgchange to read its volumes"
            case .unknown: "no file system Coffre knows (ext2/3/4, xfs, btrfs, vfat, ntfs)"
            default: nil
            }
            return FileSystem(disk: disk.name, partition: range.number, kind: kind, offset: range.offset, size: range.size,
                              path: "\(disk.name)/part\(range.number)", mounted: false, note: note)
        }
    }

    /// Mounts one file system from a read-only loop device over the disk's file; returns why not.
    private static func mountLoop(_ fs: FileSystem, in directory: String, kernel: Set<String>) -> String? {
        guard let driver = fs.kind.mountDriver else { return "not mountable" }
        guard kernel.contains(driver.type) else { return "this kernel has no \(driver.type) driver (/proc/filesystems)" }
        // nodev, nosuid, noexec: a guest's device nodes and set-uid programs grant nothing on
        // this host, whoever can reach the folder.
        let options = (["ro", "nodev", "nosuid", "noexec", "loop", "offset=\(fs.offset)", "sizelimit=\(fs.size)"]
                       + driver.options).joined(separator: ",")
        let arguments = ["-t", driver.type, "-o", options, directory + "/.disks/" + fs.disk, directory + "/" + fs.path]
        do {
            let result = try HostCommand.run(tool("mount"), arguments, log: logFile(), missing: CoffreError.toolMissing("mount"))
            return result.status == 0 ? nil : "mount -t \(driver.type) failed: \(result.output)"
        } catch {
            return "\(error)"
        }
    }

    /// The file systems the kernel can mount.
    private static func kernelFileSystems() -> Set<String> {
        let text = String(decoding: (try? FileIO.readFile("/proc/filesystems")) ?? [], as: UTF8.self)
        return Set(text.split(separator: "\n").compactMap { $0.split(separator: "\t").last.map(String.init) })
    }

    // MARK: Helpers

    static func isCoffre(_ entry: Mount) -> Bool {
        entry.fileSystemType == "fuse.coffre" && entry.source.hasPrefix("coffre:")
    }

    /// An absolute path without symbolic links (as /proc/self/mountinfo names mount points); a
    /// path the kernel cannot resolve (a stale mount) is made absolute only.
    static func canonical(_ path: String) -> String {
        let absolute = FileIO.absolutePath(path)
        guard let resolved = realpath(absolute, nil) else {
            // realpath fails on a stale mount point itself: resolve its parent.
            let parent = FileIO.directoryName(absolute)
            guard parent != absolute, let base = realpath(parent, nil) else { return absolute }
            defer { free(base) }
            let prefix = String(cString: base)
            return (prefix == "/" ? "" : prefix) + "/" + FileIO.baseName(absolute)
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func tool(_ name: String) -> String {
        ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"].map { $0 + name }.first(where: FileIO.isExecutable) ?? "/usr/bin/" + name
    }

    static func logFile() -> String {
        NSTemporaryDirectory() + "coffre-mount-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
    }
}
