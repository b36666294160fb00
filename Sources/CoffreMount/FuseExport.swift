import CFuse
import CoffreCore
import CoffreSystem
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One file or folder of a `FuseTree`.
struct FuseNode: Sendable {
    enum Kind: Sendable { case directory, file }
    var kind: Kind
    var size: Int64 = 0
    /// Permission bits.
    var mode: UInt32
    /// nil: the export's time.
    var modified: Date?
    /// Passed back to `read`.
    var handle: UInt64 = 0
}

/// What a `FuseExport` serves: fixed, read-only contents. Called from libfuse's threads.
protocol FuseTree: Sendable {
    func node(_ path: String) throws -> FuseNode?
    /// The names in a folder, without `.` and `..`.
    func children(_ path: String) throws -> [String]
    func read(_ handle: UInt64, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int
}

/// A point's disks as files, in folders fixed when it is mounted.
struct DiskTree: FuseTree {
    enum Entry: Sendable {
        case directory([String])
        case disk(Int, size: Int64)
    }

    let disks: any PointDisks
    /// Absolute paths ("/", "/disk0.img") to entries; every folder lists its children.
    let entries: [String: Entry]

    func node(_ path: String) -> FuseNode? {
        switch entries[path] {
        case .directory?: FuseNode(kind: .directory, mode: 0o555)
        case .disk(let index, let size)?: FuseNode(kind: .file, size: size, mode: 0o444, handle: UInt64(index))
        case nil: nil
        }
    }

    func children(_ path: String) -> [String] {
        if case .directory(let names)? = entries[path] { return names }
        return []
    }

    func read(_ handle: UInt64, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        try disks.read(disk: Int(handle), at: offset, into: buffer)
    }
}

/// A read-only FUSE file system (libfuse 3, high-level API) serving a `FuseTree`: a point's
/// disks as files, or the files of a FAT partition.
///
/// Requests are served by libfuse's own threads; a read that fails answers EIO and is kept
/// for `lastError`.
final class FuseExport: @unchecked Sendable {
    let tree: any FuseTree
    let mountPoint: String
    let time: timespec
    private var fuse: OpaquePointer?
    private var arguments: [UnsafeMutablePointer<CChar>?] = []
    private var loop: Thread?
    private let ended = DispatchSemaphore(value: 0)
    private let failure = Mutex<CoffreError?>(nil)
    private let unmounted = Atomic(false)

    init(tree: any FuseTree, mountPoint: String, time: Date) {
        self.tree = tree
        self.mountPoint = mountPoint
        self.time = Self.timespec(time)
    }

    deinit {
        arguments.forEach { free($0) }
    }

    private static func timespec(_ date: Date) -> timespec {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        return Glibc.timespec(tv_sec: Int(seconds), tv_nsec: Int((date.timeIntervalSince1970 - seconds) * 1e9))
    }

    /// The first read that failed, for the report after an I/O error.
    var lastError: CoffreError? { failure.withLock { $0 } }

    /// Mounts the tree at `mountPoint` (fsname `source`, type fuse.coffre) and starts serving it
    /// on libfuse's threads. **Blocks** until the kernel has the mount.
    func start(source: String) throws {
        // Mount options: read-only, no devices, set-uid or execution, permissions checked by the
        // kernel from the modes given, readable by other users (root mounts it).
        let options = "ro,nodev,nosuid,noexec,default_permissions,allow_other,fsname=\(source),subtype=coffre"
        arguments = ([String])(["coffre", "-o", options]).map { strdup($0) }
        var args = fuse_args(argc: Int32(arguments.count), argv: arguments.withUnsafeMutableBufferPointer { $0.baseAddress }, allocated: 0)
        var operations = FuseExport.operations
        let context = Unmanaged.passUnretained(self).toOpaque()
        guard let fuse = fuse_new(&args, &operations, MemoryLayout<fuse_operations>.size, context) else {
            throw CoffreError(.fuseUnavailable, "libfuse refused the mount options for \(mountPoint)",
                              workaround: "Check that the fuse3 package is installed and /dev/fuse exists (modprobe fuse)")
        }
        guard fuse_mount(fuse, mountPoint) == 0 else {
            fuse_destroy(fuse)
            throw CoffreError(
                .fuseUnavailable, "Cannot mount a FUSE file system at \(mountPoint)",
                workaround: FileIO.exists("/dev/fuse")
                    ? "Mounting needs root (CAP_SYS_ADMIN); run coffre as root"
                    : "This kernel has no /dev/fuse: load the module with `modprobe fuse`")
        }
        self.fuse = fuse
        let thread = Thread { [self] in
            var config = fuse_loop_config(clone_fd: 0, max_idle_threads: 8)
            _ = fuse_loop_mt_32(self.fuse, &config)
            ended.signal()
        }
        thread.name = "coffre-fuse"
        loop = thread
        thread.start()
        raiseReadAhead()
    }

    /// The kernel reads a FUSE file ahead by 128 KiB; 4 MiB lets a sequential read arrive as
    /// 1 MiB requests, several at once (a disk file read with dd: 342 → 456 MB/s). Best effort:
    /// the mount works without it.
    private func raiseReadAhead() {
        guard let device = (try? MountInfo.current())?.last(where: { $0.mountPoint == mountPoint })?.device,
              let fd = try? FileIO.open("/sys/class/bdi/\(device)/read_ahead_kb", .writeOnly)
        else { return }
        defer { FileIO.close(fd) }
        try? FileIO.write(fd, Array("4096".utf8), path: "read_ahead_kb")
    }

    /// Blocks until the file system is unmounted, by `stop()` or from outside (`coffre unmount`,
    /// `umount`), or until `timeout` has passed; true when it has ended.
    func wait(timeout: DispatchTime = .distantFuture) -> Bool {
        guard ended.wait(timeout: timeout) == .success else { return false }
        ended.signal()  // later waits return at once
        return true
    }

    /// Unmounts (lazily: the kernel lets go of it once nothing uses it) and waits for the
    /// serving threads to end. Safe to call twice and after an unmount from outside.
    func stop() {
        guard let fuse, !unmounted.exchange(true, ordering: .relaxed) else { return }
        fuse_exit(fuse)
        fuse_unmount(fuse)
        _ = wait()
        fuse_destroy(fuse)
    }

    // MARK: Requests, on libfuse's threads

    private static func current() -> FuseExport {
        Unmanaged<FuseExport>.fromOpaque(fuse_get_context()!.pointee.private_data).takeUnretainedValue()
    }

    private func attributes(_ path: String, into st: UnsafeMutablePointer<stat>) -> Int32 {
        let node: FuseNode
        do {
            guard let found = try tree.node(path) else { return -ENOENT }
            node = found
        } catch {
            return record(error, "looking up \(path)")
        }
        var s = stat()
        switch node.kind {
        case .directory:
            s.st_mode = S_IFDIR | node.mode
            s.st_nlink = 2
        case .file:
            s.st_mode = S_IFREG | node.mode
            s.st_nlink = 1
            s.st_size = Int(node.size)
            s.st_blksize = 1 << 20
            s.st_blocks = Int((node.size + 511) / 512)
        }
        let time = node.modified.map(Self.timespec) ?? time
        s.st_mtim = time
        s.st_ctim = time
        s.st_atim = time
        st.pointee = s
        return 0
    }

    private func record(_ error: any Error, _ what: String) -> Int32 {
        let reported = error as? CoffreError ?? CoffreError(.ioError, "\(error)")
        failure.withLock { if $0 == nil { $0 = reported } }
        FileHandle.standardError.write(Data("coffre: \(what) failed: \(reported)\n".utf8))
        return -EIO
    }

    private static let operations: fuse_operations = {
        var ops = fuse_operations()
        ops.`init` = { _, config in
            // The tree and the disks never change: let the kernel cache pages and lookups.
            if let config {
                config.pointee.kernel_cache = 1
                config.pointee.entry_timeout = 86400
                config.pointee.attr_timeout = 86400
                config.pointee.negative_timeout = 86400
            }
            return fuse_get_context()!.pointee.private_data
        }
        ops.getattr = { path, st, _ in
            guard let path, let st else { return -EINVAL }
            return current().attributes(String(cString: path), into: st)
        }
        ops.readdir = { path, buffer, fill, _, _, _ in
            guard let path, let fill else { return -EINVAL }
            let export = current(), name = String(cString: path)
            do {
                guard let node = try export.tree.node(name) else { return -ENOENT }
                guard node.kind == .directory else { return -ENOTDIR }
                for child in try [".", ".."] + export.tree.children(name) {
                    _ = fill(buffer, child, nil, 0, fuse_fill_dir_flags(0))
                }
                return 0
            } catch {
                return export.record(error, "listing \(name)")
            }
        }
        ops.open = { path, info in
            guard let path, let info else { return -EINVAL }
            let export = current(), name = String(cString: path)
            do {
                guard let node = try export.tree.node(name) else { return -ENOENT }
                guard node.kind == .file else { return -EISDIR }
                guard info.pointee.flags & O_ACCMODE == O_RDONLY else { return -EROFS }
                info.pointee.fh = node.handle
                info.pointee.keep_cache = 1
                return 0
            } catch {
                return export.record(error, "opening \(name)")
            }
        }
        ops.read = { path, buffer, count, offset, info in
            guard let buffer, let info else { return -EINVAL }
            let export = current()
            do {
                return Int32(try export.tree.read(info.pointee.fh, into: UnsafeMutableRawBufferPointer(start: buffer, count: count),
                                                  at: Int64(offset)))
            } catch {
                return export.record(error, "reading \(path.map { String(cString: $0) } ?? "?") at \(offset)")
            }
        }
        ops.statfs = { _, st in
            guard let st else { return -EINVAL }
            var s = statvfs()
            s.f_bsize = 4096
            s.f_frsize = 4096
            s.f_namemax = 255
            s.f_flag = UInt(ST_RDONLY)
            st.pointee = s
            return 0
        }
        return ops
    }()
}
