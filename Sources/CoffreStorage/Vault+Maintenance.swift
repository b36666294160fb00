public import CoffreCore
import Foundation

/// What a vault holds.
public struct VaultStats: Codable, Sendable, Equatable {
    /// Distinct data chunks stored (zero blocks are never stored).
    public var storedChunks = 0
    /// Their stored bytes (compressed, encrypted).
    public var storedBytes: Int64 = 0
    /// Sum of the sizes of all disks of all live points: what full copies would take.
    public var logicalBytes: Int64 = 0
    public var points = 0
    /// Index pages and roots, shared between points.
    public var indexChunks = 0
    public var indexBytes: Int64 = 0
    /// Packs and their bytes: what the store really holds for chunks and index objects.
    public var packs = 0
    public var packBytes: Int64 = 0
    /// Bytes of stored objects no live point needs, and of packs no index names (collection
    /// frees them; partly used packs are repacked past 5 %). Pack tables are not counted.
    public var unusedBytes: Int64 = 0
    /// `unusedBytes / packBytes`.
    public var unusedShare: Double = 0
    /// Segments of the chunk index, and packs condemned by a collection, waiting for deletion.
    public var indexSegments = 0
    public var condemnedPacks = 0
    /// Every object of the store (packs, segments, manifests, records) and their bytes.
    public var objects = 0
    public var objectBytes: Int64 = 0
    /// The requests the last backup and the last collection sent, on stores that count them (S3).
    public var lastBackup: OperationRequests?
    public var lastCollection: OperationRequests?
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
    /// Packs read whole, and packs whose table is unreadable.
    public var checkedPacks: Int = 0
    public var damagedPacks: [String] = []
}

extension Vault {
    // MARK: Stats and accounting

    /// What the vault holds, with the share of unused bytes (it walks every point). **Blocks.**
    public func stats() throws -> VaultStats {
        let workspace = CodecWorkspace(codec: codec)
        try refreshIndex(with: workspace)
        var stats = VaultStats()
        // Informational: a damaged manifest (verify names it) is left out rather than failing.
        let points = try points(skippingDamaged: true)
        stats.points = points.count
        stats.logicalBytes = points.reduce(0) { $0 + $1.logicalBytes }
        let packs = try packSizes()
        stats.packs = packs.count
        stats.packBytes = packs.values.reduce(0, +)
        stats.indexSegments = index.segmentKeys.count
        // Without marks (a point cannot be walked) the unused bytes stay unknown: 0.
        var report = CollectionReport()
        let marks = try? mark(sessions: liveSessions(report: &report, removingStale: false), workspace: workspace)
        var unused: Int64 = 0
        var indexed = Set<PackID>()
        var seen = Set<VaultSession.Key>()
        try index.forEachRecord { record, _ in
            indexed.insert(record.location.pack)
            if let marks, !marks.contains(record.kind, record.id) { unused += Int64(record.location.length) }
            guard seen.insert(VaultSession.Key(kind: record.kind, id: record.id)).inserted else { return }
            if record.kind == .chunk {
                stats.storedChunks += 1
                stats.storedBytes += Int64(record.location.length)
            } else {
                stats.indexChunks += 1
                stats.indexBytes += Int64(record.location.length)
            }
        }
        if marks != nil {
            // Packs no segment names (a backup running or killed) are unused whole.
            for (pack, size) in packs where !indexed.contains(pack) { unused += size }
            stats.unusedBytes = unused
            stats.unusedShare = stats.packBytes > 0 ? Double(unused) / Double(stats.packBytes) : 0
        }
        stats.condemnedPacks = (try? condemned())??.packs.count ?? 0
        let objects = try store.list(prefix: "")
        stats.objects = objects.count
        stats.objectBytes = objects.reduce(0) { $0 + $1.size }
        stats.lastBackup = recordedRequests("backup")
        stats.lastCollection = recordedRequests("collection")
        return stats
    }

    /// Where the requests of the last operation of a kind are kept.
    static let requestsFolder = "stats/requests-"

    /// Keeps what an operation's requests were, on stores that count them. Informational: a
    /// failure to write it never fails the operation. Counts are this process's: backups
    /// running at the same time in it are counted together. **Blocks.**
    func recordRequests(_ operation: String, since before: StoreRequests?, point: String? = nil, bytesRead: Int64? = nil) {
        guard let before, let now = store.requests else { return }
        let record = OperationRequests(operation: operation, finished: Date(), point: point, bytesRead: bytesRead,
                                       requests: now.since(before))
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        guard let bytes = try? encoder.encode(record) else { return }
        _ = try? store.put(Self.requestsFolder + operation, Array(bytes), mode: .replace)
    }

    func recordedRequests(_ operation: String) -> OperationRequests? {
        guard let bytes = try? store.get(Self.requestsFolder + operation) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(OperationRequests.self, from: Data(bytes))
    }

    /// Bytes the store holds: packs, index segments, manifests (one listing). **Blocks.**
    func storeBytes() throws -> Int64 {
        try store.list(prefix: "").reduce(0) { $0 + $1.size }
    }

    /// Accounting of every live point, by point id. Points whose manifest is damaged are left
    /// out (verify names them), so what they share counts as held by the others alone.
    ///
    /// Kept up to date by this vault's commits and expiries (`AccountingLedger`); the first
    /// call of a process walks every point once. **Blocks.**
    public func accounting() throws -> [String: PointAccounting] {
        try refreshIndex(with: CodecWorkspace(codec: codec))
        return try ledger.accounting(vault: self)
    }

    /// Per item id: the data chunks and stored bytes its points alone reference (what deleting
    /// its backup data would free once collected). Kept up to date like `accounting()`. **Blocks.**
    public func itemAccounting() throws -> [String: ItemAccounting] {
        try refreshIndex(with: CodecWorkspace(codec: codec))
        return try ledger.itemAccounting(vault: self)
    }

    // MARK: Verify

    /// Re-reads stored objects and checks them against their ids, then names the points that a
    /// damaged or missing object breaks.
    /// - Parameter percent: share of packs to read whole (every index object is always read).
    public func verify(percent: Double = 100) throws -> VerifyReport {
        let session = try VaultSession(vault: self, purpose: "verify", protecting: [])
        defer { session.close() }
        let workspace = CodecWorkspace(codec: codec)
        let packs = try packSizes()
        struct Spot: Hashable {
            var pack: PackID
            var offset: UInt32
        }
        var badSpots = Set<Spot>()
        var badPacks = Set<PackID>()
        var checkedChunks = 0, checkedIndex = 0, checkedPacks = 0
        var generator = SystemRandomNumberGenerator()
        for (pack, size) in packs.sorted(by: { $0.key < $1.key }) {
            let whole = percent >= 100 || Double.random(in: 0..<100, using: &generator) < percent
            do {
                if whole {
                    guard let bytes = try store.get(pack.key) else { continue }  // deleted meanwhile
                    checkedPacks += 1
                    for entry in try PackFormat.table(of: bytes, pack: pack, workspace: workspace) {
                        if entry.kind == .chunk { checkedChunks += 1 } else { checkedIndex += 1 }
                        if !workspace.verifies(Array(bytes[entry.range]), entry) {
                            badSpots.insert(Spot(pack: pack, offset: entry.offset))
                        }
                    }
                } else {
                    // The index objects only, read together (a backup writes them side by side).
                    let entries = try PackFormat.readTable(store, pack: pack, size: size, workspace: workspace)
                        .filter { $0.kind == .index }
                    let plan = ReadPlan(entries.map { ObjectLocation(pack: pack, offset: $0.offset, length: $0.length) },
                                        coalescing: store.readCoalescing)
                    var segment: (index: Int, bytes: [UInt8]?) = (-1, nil)
                    for (item, entry) in entries.enumerated() {
                        checkedIndex += 1
                        let index = Int(plan.segmentOf[item])
                        let range = plan.segments[index].range
                        if segment.index != index { segment = (index, try store.get(pack.key, range: range)) }
                        let start = Int(Int64(entry.offset) - range.lowerBound)
                        guard let bytes = segment.bytes,
                              workspace.verifies(Array(bytes[start..<start + Int(entry.length)]), entry) else {
                            badSpots.insert(Spot(pack: pack, offset: entry.offset))
                            continue
                        }
                    }
                }
            } catch let error as CoffreError where error.code == .chunkDamaged || error.code == .chunkMissing {
                badPacks.insert(pack)
            }
        }

        // Which points reach a bad object (or one the index cannot place).
        var damaged = Set<ChunkID>()
        var missing = Set<ChunkID>()
        var broken = Set<String>()
        func check(_ kind: ObjectKind, _ id: ChunkID) throws -> Bool {
            guard let location = try index.lookup(kind, id, avoiding: session.avoiding), packs[location.pack] != nil else {
                missing.insert(id)
                return false
            }
            if badPacks.contains(location.pack) || badSpots.contains(Spot(pack: location.pack, offset: location.offset)) {
                damaged.insert(id)
                return false
            }
            return true
        }
        for name in try manifestNames() {
            guard let bytes = try readManifest(name) else { continue }
            let point: RecoveryPointManifest
            do {
                point = try RecoveryPointManifest.decode(bytes, name: name, with: workspace)
            } catch {
                broken.insert(name)
                continue
            }
            var bad = false
            /// The ids an index object lists, read by `load`; none when it is missing or damaged.
            func ids(_ id: ChunkID, load: () throws -> [ChunkID]) throws -> [ChunkID] {
                guard try check(.index, id) else {
                    bad = true
                    return []
                }
                do {
                    return try load()
                } catch let error as CoffreError where error.code == .chunkMissing {
                    missing.insert(id)
                } catch {
                    damaged.insert(id)
                }
                bad = true
                return []
            }
            for disk in point.disks {
                let pages = try ids(disk.rootID) { try loadIDs(disk.rootID, with: workspace, avoiding: session.avoiding) }
                let reader = try SegmentReader(vault: self, kind: .index, ids: pages, avoiding: session.avoiding)
                for (item, page) in pages.enumerated() {
                    for id in try ids(page, load: { try reader.loadIDs(item, with: workspace) }) where !id.isZero {
                        if try !check(.chunk, id) { bad = true }
                    }
                }
            }
            if bad { broken.insert(point.id) }
        }
        return VerifyReport(
            clean: damaged.isEmpty && missing.isEmpty && broken.isEmpty && badPacks.isEmpty && badSpots.isEmpty,
            checkedChunks: checkedChunks, checkedIndexObjects: checkedIndex,
            damagedChunks: damaged.map(\.hex).sorted(), missingChunks: missing.map(\.hex).sorted(),
            brokenPoints: broken.sorted(), checkedPacks: checkedPacks, damagedPacks: badPacks.map(\.hex).sorted())
    }
}
