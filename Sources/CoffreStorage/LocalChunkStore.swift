public import CoffreCore
import CoffreSystem
import Foundation

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
        if refresh { return try FileIO.touch(p) }
        return FileIO.exists(p) || FileIO.exists(p + ".gc")
    }

    public func storedSize(_ kind: ObjectKind, _ id: ChunkID) -> Int64? {
        let p = path(kind, id)
        guard let status = FileIO.linkStatus(p) ?? FileIO.linkStatus(p + ".gc") else { return nil }
        return status.size
    }

    public func forEachObject(_ kind: ObjectKind, _ body: (ChunkID, Int64) throws -> Void) throws {
        for shard in 0..<256 {
            let dir = "\(root)/\(kind.folder)/\(Self.shardName(shard))"
            for name in try FileIO.list(dir) {
                let hex = name.hasSuffix(".gc") ? String(name.dropLast(3)) : name
                guard let id = ChunkID(hex: hex), let status = FileIO.linkStatus("\(dir)/\(name)") else { continue }
                if name.hasSuffix(".gc"), FileIO.exists("\(dir)/\(hex)") { continue }
                try body(id, status.size)
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
        try FileIO.remove("\(root)/points/\(name)")
        try FileIO.fsyncDirectory("\(root)/points")
    }

    // MARK: Sessions

    public func beginSession(purpose: String, protecting roots: [ChunkID]) throws -> any WriteSession {
        let lock = try lockCollection(.shared)
        defer { FileIO.close(lock) }
        let session = try LocalWriteSession(store: self, purpose: purpose, roots: roots)
        FileIO.unlock(lock)
        return session
    }

    /// Opens `gc.lock` and takes it: shared by sessions and verify, exclusive by collection.
    private func lockCollection(_ kind: FileIO.LockKind) throws -> Int32 {
        let path = "\(root)/gc.lock"
        let lock = try FileIO.open(path, [.readWrite, .create], mode: 0o644)
        do {
            try FileIO.lock(lock, kind, path: path)
        } catch {
            FileIO.close(lock)
            throw error
        }
        return lock
    }

    public func withCollectionPaused<T>(_ body: () throws -> T) throws -> T {
        let lock = try lockCollection(.shared)
        defer { FileIO.close(lock) }
        return try body()
    }

    // MARK: Collection

    public func collectGarbage(mark: ([ChunkID]) throws -> MarkSet) throws -> CollectionReport {
        let lock = try lockCollection(.exclusive)
        defer { FileIO.close(lock) }

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
                    if FileIO.exists(original) {
                        FileIO.unlink("\(dir)/\(name)")
                    } else {
                        _ = try FileIO.renameIfPresent("\(dir)/\(name)", to: original)
                    }
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
            guard let status = FileIO.linkStatus("\(folder)/\(name)") else { continue }
            if let cutoff, status.modificationTime >= cutoff { continue }
            FileIO.unlink("\(folder)/\(name)")
        }
    }

    /// Removes an unreferenced object unless a running writer may be using it; returns its size when removed.
    private func removeUnlessYoung(_ p: String, cutoff: Double?) throws -> Int64? {
        func isYoung(_ status: FileIO.Status) -> Bool {
            guard let cutoff else { return false }
            return status.modificationTime >= cutoff
        }
        guard let status = FileIO.linkStatus(p), !isYoung(status) else { return nil }
        let trash = p + ".gc"
        guard try FileIO.renameIfPresent(p, to: trash) else { return nil }
        if let again = FileIO.linkStatus(trash), isYoung(again) {
            try FileIO.rename(trash, to: p)
            return nil
        }
        try FileIO.remove(trash)
        return status.size
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
            guard let fd = try FileIO.openIfPresent(p, .readOnly) else { continue }
            defer { FileIO.close(fd) }
            if try FileIO.tryLock(fd, .shared, path: p) {
                // Nobody holds it: its process is gone.
                FileIO.unlink(p)
                try FileIO.removeTree("\(root)/tmp/\(name)")
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
            try FileIO.removeTree("\(root)/tmp/\(name)")
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
        name = "\(purpose)-\(Processes.currentID)-\(randomHex(8))"
        leasePath = "\(store.root)/leases/\(name)"
        staging = "\(store.root)/tmp/\(name)"
        leaseFD = try FileIO.open(leasePath, [.readWrite, .create, .exclusive], mode: 0o644)
        do {
            try FileIO.lock(leaseFD, .exclusive, path: leasePath)
            // Two seconds early: file times are coarser than the clock.
            let info = LocalChunkStore.SessionInfo(
                purpose: purpose, pid: Processes.currentID,
                started: Date().timeIntervalSince1970 - 2, roots: roots.map(\.hex))
            try FileIO.write(leaseFD, Array(try JSONEncoder().encode(info)), path: leasePath)
            try FileIO.makeDirectory(staging)
        } catch {
            FileIO.close(leaseFD)
            FileIO.unlink(leasePath)
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
        guard let fd = try FileIO.createIfAbsent(p, makingParent: true) else { return false }  // staged already
        defer { FileIO.close(fd) }
        do {
            try FileIO.pwrite(fd, frame, at: 0, path: p)
        } catch {
            FileIO.unlink(p)
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
                try FileIO.rename("\(staging)/\(shard)/\(name)", to: store.path(kind, id))
            }
        }
        try FileIO.syncFileSystem(of: store.root)
    }

    func close() {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { return }
        closed = true
        try? FileIO.removeTree(staging)
        FileIO.unlink(leasePath)
        FileIO.close(leaseFD)
    }
}
