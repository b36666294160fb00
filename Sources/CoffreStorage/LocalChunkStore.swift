public import CoffreCore
import CShims
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A chunk store in a local folder.
///
/// Layout: `chunks/ab/<id>` and `indexes/ab/<id>` (256 shards each), `points/<id>`,
/// `leases/<session>` (one per running backup or restore, flock-held while it runs),
/// `tmp/<session>/` (objects staged by a session), `gc.lock`.
///
/// Crash safety: objects are staged in `tmp/`, made durable with one `syncfs`, then renamed into
/// place and made durable again before a manifest may refer to them, so a visible object is
/// always complete. Collection holds `gc.lock` exclusively; sessions register under it shared,
/// so a collection knows every running session, keeps what their roots reach and every object
/// younger than the oldest of them (writers refresh the objects they reuse), and deletes by
/// renaming to `<id>.gc` first, re-checking the age, then unlinking — a writer's refresh either
/// lands before the rename (the object is kept) or fails (the writer stores it again).
public final class LocalChunkStore: ChunkStore {
    public let root: String

    public init(root: String) {
        self.root = root
    }

    /// Creates the folder layout of an empty store.
    public static func createLayout(at root: String) throws {
        for kind in [ObjectKind.chunk, .index] {
            try FileIO.makeDirectory("\(root)/\(kind.folder)")
            for shard in 0..<256 {
                try FileIO.makeDirectory("\(root)/\(kind.folder)/\(Self.shardName(shard))")
            }
        }
        for folder in ["points", "leases", "tmp"] {
            try FileIO.makeDirectory("\(root)/\(folder)")
        }
    }

    static func shardName(_ shard: Int) -> String {
        shard < 16 ? "0" + String(shard, radix: 16) : String(shard, radix: 16)
    }

    func path(_ kind: ObjectKind, _ id: ChunkID) -> String {
        let hex = id.hex
        return "\(root)/\(kind.folder)/\(hex.prefix(2))/\(hex)"
    }

    // MARK: Objects

    public func read(_ kind: ObjectKind, _ id: ChunkID) throws -> [UInt8]? {
        let p = path(kind, id)
        if let bytes = try FileIO.readFile(p) { return bytes }
        // A collection may be deciding about it this very moment (see the type's comment).
        return try FileIO.readFile(p + ".gc")
    }

    public func contains(_ kind: ObjectKind, _ id: ChunkID, refresh: Bool) throws -> Bool {
        let p = path(kind, id)
        if refresh {
            if utimensat(AT_FDCWD, p, nil, 0) == 0 { return true }
            if errno == ENOENT { return false }
            throw CoffreError.io("touch", p, errno: errno)
        }
        return FileIO.exists(p) || FileIO.exists(p + ".gc")
    }

    public func storedSize(_ kind: ObjectKind, _ id: ChunkID) -> Int64? {
        let p = path(kind, id)
        guard let st = FileIO.lstatOrNil(p) ?? FileIO.lstatOrNil(p + ".gc") else { return nil }
        return Int64(st.st_size)
    }

    public func forEachObject(_ kind: ObjectKind, _ body: (ChunkID, Int64) throws -> Void) throws {
        for shard in 0..<256 {
            let dir = "\(root)/\(kind.folder)/\(Self.shardName(shard))"
            for name in try FileIO.list(dir) {
                let hex = name.hasSuffix(".gc") ? String(name.dropLast(3)) : name
                guard let id = ChunkID(hex: hex), let st = FileIO.lstatOrNil("\(dir)/\(name)") else { continue }
                if name.hasSuffix(".gc"), FileIO.exists("\(dir)/\(hex)") { continue }
                try body(id, Int64(st.st_size))
            }
        }
    }

    // MARK: Manifests

    public func writeManifest(_ name: String, _ frame: [UInt8]) throws {
        try FileIO.writeFileAtomically("\(root)/points/\(name)", frame)
    }

    public func readManifest(_ name: String) throws -> [UInt8]? {
        try FileIO.readFile("\(root)/points/\(name)")
    }

    public func manifestNames() throws -> [String] {
        try FileIO.list("\(root)/points").filter { !$0.hasPrefix(".") }
    }

    public func removeManifest(_ name: String) throws {
        let p = "\(root)/points/\(name)"
        if unlink(p) != 0 { throw CoffreError.io("unlink", p, errno: errno) }
        try FileIO.fsyncDirectory("\(root)/points")
    }

    // MARK: Sessions

    public func beginSession(purpose: String, protecting roots: [ChunkID]) throws -> any WriteSession {
        let lock = try FileIO.open("\(root)/gc.lock", O_RDWR | O_CREAT, mode: 0o644)
        defer { close(lock) }
        try Self.lock(lock, LOCK_SH, path: "\(root)/gc.lock")
        let session = try LocalWriteSession(store: self, purpose: purpose, roots: roots)
        coffre_flock(lock, LOCK_UN)
        return session
    }

    static func lock(_ fd: Int32, _ operation: Int32, path: String) throws {
        while coffre_flock(fd, operation) != 0 {
            if errno == EINTR { continue }
            throw CoffreError.io("lock", path, errno: errno)
        }
    }

    public func withCollectionPaused<T>(_ body: () throws -> T) throws -> T {
        let lock = try FileIO.open("\(root)/gc.lock", O_RDWR | O_CREAT, mode: 0o644)
        defer { close(lock) }
        try Self.lock(lock, LOCK_SH, path: "\(root)/gc.lock")
        return try body()
    }

    // MARK: Collection

    public func collectGarbage(mark: ([ChunkID]) throws -> MarkSet) throws -> CollectionReport {
        let lockPath = "\(root)/gc.lock"
        let lock = try FileIO.open(lockPath, O_RDWR | O_CREAT, mode: 0o644)
        defer { close(lock) }
        try Self.lock(lock, LOCK_EX, path: lockPath)

        var report = CollectionReport()
        let (live, stale) = try liveSessions()
        report.staleSessionsRemoved = stale
        let marks = try mark(live.flatMap(\.roots))
        // Objects a running writer wrote or refreshed are younger than the writer's start.
        let cutoff = live.map(\.started).min()
        removeAbandonedManifestFiles(olderThan: cutoff)

        for kind in [ObjectKind.chunk, .index] {
            for shard in 0..<256 {
                let dir = "\(root)/\(kind.folder)/\(Self.shardName(shard))"
                for name in try FileIO.list(dir) where name.hasSuffix(".gc") {
                    // Left by a collection that was killed between its rename and its decision.
                    let original = "\(dir)/\(name.dropLast(3))"
                    if FileIO.exists(original) { unlink("\(dir)/\(name)") } else { rename("\(dir)/\(name)", original) }
                }
                for name in try FileIO.list(dir) {
                    guard let id = ChunkID(hex: name) else { continue }
                    if marks.contains(kind, id) {
                        if kind == .chunk { report.keptChunks += 1 } else { report.keptIndexObjects += 1 }
                        continue
                    }
                    let p = "\(dir)/\(name)"
                    if let removed = try removeUnlessYoung(p, cutoff: cutoff) {
                        if kind == .chunk { report.removedChunks += 1 } else { report.removedIndexObjects += 1 }
                        report.removedBytes += removed
                    } else if kind == .chunk {
                        report.keptChunks += 1
                    } else {
                        report.keptIndexObjects += 1
                    }
                }
            }
        }
        return report
    }

    /// Removes the temp files of manifest writes that a killed process never renamed into place.
    /// A running session may be writing one right now: only files older than it go.
    private func removeAbandonedManifestFiles(olderThan cutoff: Double?) {
        let folder = "\(root)/points"
        for name in (try? FileIO.list(folder)) ?? [] where name.hasPrefix(".tmp-") {
            guard let st = FileIO.lstatOrNil("\(folder)/\(name)") else { continue }
            if let cutoff, Self.modificationTime(st) >= cutoff { continue }
            unlink("\(folder)/\(name)")
        }
    }

    /// Seconds since the epoch, comparable with a session's `started`.
    static func modificationTime(_ st: stat) -> Double {
        Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
    }

    /// Removes an unreferenced object unless a running writer may be using it; returns its size when removed.
    private func removeUnlessYoung(_ p: String, cutoff: Double?) throws -> Int64? {
        func isYoung(_ st: stat) -> Bool {
            guard let cutoff else { return false }
            return Self.modificationTime(st) >= cutoff
        }
        guard let st = FileIO.lstatOrNil(p), !isYoung(st) else { return nil }
        let trash = p + ".gc"
        guard rename(p, trash) == 0 else {
            if errno == ENOENT { return nil }
            throw CoffreError.io("rename", p, errno: errno)
        }
        if let again = FileIO.lstatOrNil(trash), isYoung(again) {
            rename(trash, p)
            return nil
        }
        unlink(trash)
        return Int64(st.st_size)
    }

    struct SessionInfo: Codable {
        var purpose: String
        var pid: Int32
        var started: Double
        var roots: [String]
    }

    /// Running sessions (their lease is flock-held) and how many dead ones were cleaned up.
    /// Call with `gc.lock` held exclusively.
    private func liveSessions() throws -> (live: [(started: Double, roots: [ChunkID])], stale: Int) {
        var live: [(started: Double, roots: [ChunkID])] = []
        var liveNames = Set<String>()
        var stale = 0
        for name in try FileIO.list("\(root)/leases") {
            let p = "\(root)/leases/\(name)"
            let fd = Glibc.open(p, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            if coffre_flock(fd, LOCK_SH | LOCK_NB) == 0 {
                // Nobody holds it: its process is gone.
                unlink(p)
                FileIO.removeTree("\(root)/tmp/\(name)")
                stale += 1
                continue
            }
            liveNames.insert(name)
            guard let bytes = try FileIO.readFile(p),
                  let info = try? JSONDecoder().decode(SessionInfo.self, from: Data(bytes)) else {
                // Held but unreadable: keep everything it could reach by treating it as started at 0.
                live.append((0, []))
                continue
            }
            live.append((info.started, info.roots.compactMap { ChunkID(hex: $0) }))
        }
        for name in try FileIO.list("\(root)/tmp") where !liveNames.contains(name) {
            FileIO.removeTree("\(root)/tmp/\(name)")
        }
        return (live, stale)
    }
}

/// A running backup's or restore's lease on a `LocalChunkStore`.
final class LocalWriteSession: WriteSession, @unchecked Sendable {
    let store: LocalChunkStore
    let name: String
    let staging: String
    private let leaseFD: Int32
    private let leasePath: String
    private var closed = false
    private let lock = NSLock()

    init(store: LocalChunkStore, purpose: String, roots: [ChunkID]) throws {
        self.store = store
        name = "\(purpose)-\(getpid())-\(randomHex(8))"
        leasePath = "\(store.root)/leases/\(name)"
        staging = "\(store.root)/tmp/\(name)"
        leaseFD = try FileIO.open(leasePath, O_RDWR | O_CREAT | O_EXCL, mode: 0o644)
        do {
            try LocalChunkStore.lock(leaseFD, LOCK_EX, path: leasePath)
            // Two seconds early: file times are coarser than the clock.
            let info = LocalChunkStore.SessionInfo(
                purpose: purpose, pid: getpid(),
                started: Date().timeIntervalSince1970 - 2, roots: roots.map(\.hex))
            try FileIO.write(leaseFD, Array(try JSONEncoder().encode(info)), path: leasePath)
            try FileIO.makeDirectory(staging)
        } catch {
            Glibc.close(leaseFD)
            unlink(leasePath)
            throw error
        }
    }

    deinit { close() }

    /// Staged objects are sharded like the store: one directory would serialize the workers'
    /// file creations on its lock.
    private func stagedPath(_ kind: ObjectKind, _ id: ChunkID) -> String {
        let hex = id.hex
        return "\(staging)/\(hex.prefix(2))/\(kind.rawValue)-\(hex)"
    }

    func stage(_ kind: ObjectKind, _ id: ChunkID, _ frame: UnsafeRawBufferPointer) throws -> Bool {
        let p = stagedPath(kind, id)
        var fd = Glibc.open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 && errno == ENOENT {
            try FileIO.makeDirectory(FileIO.directoryName(p))
            fd = Glibc.open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        }
        if fd < 0 {
            if errno == EEXIST { return false }
            throw CoffreError.io("create", p, errno: errno)
        }
        defer { Glibc.close(fd) }
        do {
            try FileIO.pwrite(fd, frame, at: 0, path: p)
        } catch {
            unlink(p)
            throw error
        }
        return true
    }

    func hasStaged(_ kind: ObjectKind, _ id: ChunkID) -> Bool {
        FileIO.exists(stagedPath(kind, id))
    }

    func publish() throws {
        try FileIO.syncFileSystem(of: store.root)
        for shard in try FileIO.list(staging) {
            for name in try FileIO.list("\(staging)/\(shard)") {
                guard let dash = name.firstIndex(of: "-"),
                      let raw = UInt8(name[..<dash]), let kind = ObjectKind(rawValue: raw),
                      let id = ChunkID(hex: name[name.index(after: dash)...]) else { continue }
                let target = store.path(kind, id)
                if rename("\(staging)/\(shard)/\(name)", target) != 0 {
                    throw CoffreError.io("rename", target, errno: errno)
                }
            }
        }
        try FileIO.syncFileSystem(of: store.root)
    }

    func close() {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { return }
        closed = true
        FileIO.removeTree(staging)
        unlink(leasePath)
        Glibc.close(leaseFD)
    }
}
