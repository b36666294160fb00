public import CoffreCore
import Foundation

/// What a vault holds.
public struct VaultStats: Codable, Sendable, Equatable {
    /// Distinct data chunks stored (zero blocks are never stored).
    public var storedChunks = 0
    /// Their bytes on disk (compressed, encrypted).
    public var storedBytes: Int64 = 0
    /// Sum of the sizes of all disks of all live points: what full copies would take.
    public var logicalBytes: Int64 = 0
    public var points = 0
    /// Index pages and roots, shared between points.
    public var indexChunks = 0
    public var indexBytes: Int64 = 0
}


/// What `verify` found.
public struct VerifyReport: Codable, Sendable, Equatable {
    public var clean: Bool
    public var checkedChunks: Int
    public var checkedIndexObjects: Int
    public var damagedChunks: [String]
    public var missingChunks: [String]
    /// Points that cannot be restored completely.
    public var brokenPoints: [String]
}

extension Vault {
    // MARK: Collection

    /// Removes every object that no live point and no running session needs.
    @discardableResult
    public func collectGarbage() throws -> CollectionReport {
        let workspace = CodecWorkspace(codec: codec)
        return try store.collectGarbage { protectedRoots in
            var marks = MarkSet()
            let roots = try points().flatMap { $0.disks.map(\.rootID) } + protectedRoots
            for root in roots where marks.indexes.insert(root.prefix).inserted {
                for page in try loadIDs(root, with: workspace) where marks.indexes.insert(page.prefix).inserted {
                    for id in try loadIDs(page, with: workspace) where !id.isZero {
                        marks.chunks.insert(id.prefix)
                    }
                }
            }
            return marks
        }
    }

    // MARK: Stats and accounting

    public func stats() throws -> VaultStats {
        var stats = try objectStats()
        // Informational: a damaged manifest (verify names it) is left out rather than failing.
        let points = try points(skippingDamaged: true)
        stats.points = points.count
        stats.logicalBytes = points.reduce(0) { $0 + $1.logicalBytes }
        return stats
    }

    /// The stored objects' counts and bytes (the part of `stats` that reads no manifest). **Blocks.**
    func objectStats() throws -> VaultStats {
        var stats = VaultStats()
        try store.forEachObject(.chunk) { _, size in
            stats.storedChunks += 1
            stats.storedBytes += size
        }
        try store.forEachObject(.index) { _, size in
            stats.indexChunks += 1
            stats.indexBytes += size
        }
        return stats
    }

    /// Accounting of every live point, by point id. Points whose manifest is damaged are left
    /// out (verify names them), so what they share counts as held by the others alone.
    ///
    /// Kept up to date by this vault's commits and expiries (`AccountingLedger`); the first
    /// call of a process walks every point once. **Blocks.**
    public func accounting() throws -> [String: PointAccounting] {
        try ledger.accounting(vault: self)
    }

    // MARK: Verify

    /// Re-reads stored objects and checks them against their ids, then names the points that a
    /// damaged or missing object breaks.
    /// - Parameter percent: share of data chunks to re-read (index objects are always read).
    public func verify(percent: Double = 100) throws -> VerifyReport {
        try store.withCollectionPaused { try verifyPaused(percent: percent) }
    }

    private func verifyPaused(percent: Double) throws -> VerifyReport {
        let workspace = CodecWorkspace(codec: codec)
        var damaged = Set<ChunkID>()
        var missing = Set<ChunkID>()
        var broken = Set<String>()
        var checkedChunks = 0, checkedIndex = 0

        func check(_ kind: ObjectKind, _ id: ChunkID) {
            do {
                _ = try load(kind, id, with: workspace)
            } catch let error as CoffreError where error.code == .chunkMissing {
                missing.insert(id)
            } catch {
                damaged.insert(id)
            }
        }
        var generator = SystemRandomNumberGenerator()
        try store.forEachObject(.chunk) { id, _ in
            guard percent >= 100 || Double.random(in: 0..<100, using: &generator) < percent else { return }
            checkedChunks += 1
            check(.chunk, id)
        }
        try store.forEachObject(.index) { id, _ in
            checkedIndex += 1
            check(.index, id)
        }

        // Which points reach a bad object (or a referenced object that is not stored at all).
        var manifests: [RecoveryPointManifest] = []
        for name in try store.manifestNames() {
            guard let bytes = try store.readManifest(name) else { continue }
            do {
                manifests.append(try RecoveryPointManifest.decode(bytes, name: name, with: workspace))
            } catch {
                broken.insert(name)
            }
        }
        for point in manifests {
            var bad = false
            func ids(_ id: ChunkID) -> [ChunkID] {
                if damaged.contains(id) || missing.contains(id) { bad = true; return [] }
                do {
                    return try loadIDs(id, with: workspace)
                } catch let error as CoffreError where error.code == .chunkMissing {
                    missing.insert(id)
                } catch {
                    damaged.insert(id)
                }
                bad = true
                return []
            }
            for disk in point.disks {
                for page in ids(disk.rootID) {
                    for id in ids(page) where !id.isZero {
                        if damaged.contains(id) || missing.contains(id) {
                            bad = true
                        } else if try !store.contains(.chunk, id, refresh: false) {
                            missing.insert(id)
                            bad = true
                        }
                    }
                }
            }
            if bad { broken.insert(point.id) }
        }
        return VerifyReport(
            clean: damaged.isEmpty && missing.isEmpty && broken.isEmpty,
            checkedChunks: checkedChunks, checkedIndexObjects: checkedIndex,
            damagedChunks: damaged.map(\.hex).sorted(), missingChunks: missing.map(\.hex).sorted(),
            brokenPoints: broken.sorted())
    }
}
