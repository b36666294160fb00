import CoffreCore
import CoffreSystem
import Foundation

/// What `Vault.upgrade` did.
public struct UpgradeReport: Codable, Sendable, Equatable {
    /// The vault was in format 2 already (leftovers of an interrupted upgrade were removed).
    public var alreadyUpgraded = false
    public var chunks = 0
    public var indexObjects = 0
    /// Objects found converted by an earlier, interrupted run.
    public var skipped = 0
    /// Format-1 objects that failed verification: not copied (`coffre vault verify` names the
    /// points they break).
    public var damaged: [String] = []
    public var packs = 0
}

extension Vault {
    /// Converts a format-1 vault (one file per object) in a local folder to format 2, in place.
    ///
    /// Every object file is verified and copied as it is (its frame does not change) into packs,
    /// which are indexed as they are written; only once every object is in a pack does the
    /// configuration say version 2, and only then are the old folders removed. Killed at any
    /// moment, the vault is either still format 1 — intact, and a new run skips what is
    /// converted already — or format 2 with leftovers that a new run removes. No format-1
    /// process may use the vault meanwhile: the old collection lock and every lease are checked.
    /// - Parameter progress: called at each checkpoint (every `checkpointObjects` objects) with
    ///   the objects dealt with so far; a throw stops the upgrade there (resumable).
    /// **Blocks.**
    public static func upgrade(
        at path: String, encryptionKeyFile: String? = nil, progress: ((_ done: Int, _ found: Int) throws -> Void)? = nil
    ) throws -> UpgradeReport {
        let path = FileIO.absolutePath(path)
        guard FileIO.exists("\(path)/\(VaultConfiguration.fileName)") else { throw CoffreError.vaultNotFound(path) }
        try FileIO.makeDirectory("\(path)/tmp")
        let store = LocalChunkStore(root: path)
        let old = try readConfiguration(store)
        var report = UpgradeReport()
        if old.version == VaultConfiguration.currentVersion {
            report.alreadyUpgraded = true
            try removeFormatOneLeftovers(path)
            return report
        }
        guard old.version == 1 else { throw CoffreError.vaultFormatUnsupported("version \(old.version)") }

        // The format-1 collection lock, then every lease: no format-1 backup, restore or collection runs.
        let lockPath = "\(path)/gc.lock"
        let lock = try FileIO.open(lockPath, [.readWrite, .create], mode: 0o644)
        defer { FileIO.close(lock) }
        guard try FileIO.tryLock(lock, .exclusive, path: lockPath) else {
            throw CoffreError.vaultBusy("a Coffre of the previous version is using it (\(lockPath) is locked)")
        }
        for name in try FileIO.list("\(path)/leases") {
            let lease = "\(path)/leases/\(name)"
            guard let fd = try FileIO.openIfPresent(lease, .readOnly) else { continue }
            defer { FileIO.close(fd) }
            guard try FileIO.tryLock(fd, .shared, path: lease) else {
                throw CoffreError.vaultBusy("a backup or restore of the previous version runs (\(lease))")
            }
        }

        var configuration = old
        configuration.version = VaultConfiguration.currentVersion
        configuration.packSize = VaultConfiguration.defaultPackSize
        let vault = try Vault(store: store, configuration: configuration,
                              keys: try keys(for: old, keyFile: encryptionKeyFile), cacheDirectory: "\(path)/tmp")
        try vault.withCollectionLock {
            let session = try VaultSession(vault: vault, purpose: "upgrade", protecting: [])
            defer { session.close() }
            let writer = session.makeWriter()
            let workspace = CodecWorkspace(codec: vault.codec)
            var total = 0
            for kind in [ObjectKind.chunk, .index] {
                for shard in 0..<256 {
                    let dir = "\(path)/\(kind.formatOneFolder)/\(formatOneShard(shard))"
                    for name in try FileIO.list(dir) {
                        // `<id>.gc`: a format-1 collection was killed deciding about it; it still counts.
                        let hex = name.hasSuffix(".gc") ? String(name.dropLast(3)) : name
                        guard let id = ChunkID(hex: hex) else { continue }
                        total += 1
                        if try session.contains(kind, id) || !session.claim(kind, id) {
                            report.skipped += 1
                            continue
                        }
                        guard let frame = try FileIO.readFile("\(dir)/\(name)") else { continue }
                        guard (try? workspace.decode(frame, id: id, kind: kind) { _ in }) != nil else {
                            report.damaged.append(hex)
                            continue
                        }
                        try frame.withUnsafeBytes { try writer.append(kind, id, frame: $0) }
                        if kind == .chunk { report.chunks += 1 } else { report.indexObjects += 1 }
                        if (report.chunks + report.indexObjects) % checkpointObjects == 0 {
                            // What is packed so far is durable and indexed: a new run skips it.
                            try writer.flush()
                            try session.checkpoint()
                            try progress?(total, total)
                        }
                    }
                }
            }
            try session.publish()
            report.packs = try vault.packSizes().count
            try progress?(total, total)
        }
        // Every object is in an indexed pack: from now on the vault is format 2.
        try store.put(VaultConfiguration.fileName, try configuration.encoded(), mode: .replace)
        try removeFormatOneLeftovers(path)
        return report
    }

    /// Objects between two checkpoints of an upgrade.
    static let checkpointObjects = 1024

    static func formatOneShard(_ shard: Int) -> String {
        shard < 16 ? "0" + String(shard, radix: 16) : String(shard, radix: 16)
    }

    /// The folders and files only format 1 used. **Blocks.**
    private static func removeFormatOneLeftovers(_ path: String) throws {
        for folder in [ObjectKind.chunk.formatOneFolder, ObjectKind.index.formatOneFolder, "leases"] {
            try FileIO.removeTree("\(path)/\(folder)")
        }
        FileIO.unlink("\(path)/gc.lock")
        // Format 1 staged a session's objects in tmp/<session>/ folders.
        for name in try FileIO.list("\(path)/tmp") where FileIO.isDirectory("\(path)/tmp/\(name)") {
            try FileIO.removeTree("\(path)/tmp/\(name)")
        }
    }
}
