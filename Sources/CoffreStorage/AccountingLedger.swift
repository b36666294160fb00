import CoffreCore
import Synchronization

/// The vault's block accounting (K2), kept up to date instead of computed per request.
///
/// For every object a live point references: how many points reference it, the XOR of their
/// ordinals (with one referrer left, that is its ordinal) and its stored size. For every point:
/// the data chunks only it references and the bytes expiring it would free.
///
/// Per protected item the same (the storage a VM holds alone): each object also keeps the sum
/// of its referrers' item ordinals and the sum of their squares. All referrers are of one item
/// exactly when `count · Σx² = (Σx)²` (equality in Cauchy–Schwarz), and that item is `Σx / count`;
/// so whether an object belongs to one item alone is known in O(1) at every change, and each
/// item's total moves when an object enters or leaves that state. A commit adds the
/// new point's references, an expiry removes the expired point's (one walk of that point's
/// index each); reading the accounting walks nothing.
///
/// Points written or expired by another process are noticed by `reconcile`, which compares the
/// manifests in the store with the points known here (a listing of `points/`): new ones are
/// added, and a vanished one (its index can no longer be walked) makes the next read rebuild
/// everything. Accounting is informational: a mistake here never deletes data (collection marks
/// from the manifests themselves).
///
/// Memory, estimated from the layout: a 32-byte id and 16 bytes per distinct stored object plus
/// the dictionary's slack, 60–100 bytes (1 M objects, 64 GiB of distinct 64 KiB blocks, 60–100
/// MiB); storage v2's chunk index will carry the reference counts instead.
final class AccountingLedger: Sendable {
    private struct Object {
        var count: UInt32
        /// XOR of the ordinals of the points referencing it.
        var owners: UInt32
        var size: Int64
        /// Σ and Σ² of the item ordinals of the points referencing it (one term per point).
        var itemSum: UInt64 = 0
        var itemSquares: UInt64 = 0

        /// The one item every referrer belongs to; nil when several items share it.
        var soleItem: UInt32? {
            guard count > 0 else { return nil }
            let n = UInt64(count)
            guard itemSum % n == 0 else { return nil }
            let item = itemSum / n
            return n &* item &* item == itemSquares ? UInt32(item) : nil
        }

        mutating func add(point: UInt32, item: UInt32) {
            count += 1
            owners ^= point
            itemSum &+= UInt64(item)
            itemSquares &+= UInt64(item) * UInt64(item)
        }

        mutating func remove(point: UInt32, item: UInt32) {
            count -= 1
            owners ^= point
            itemSum &-= UInt64(item)
            itemSquares &-= UInt64(item) * UInt64(item)
        }
    }

    private struct Point {
        var ordinal: UInt32
        var item: UInt32
        var blocksAdded: Int
        var onlyHere = 0
        var freed: Int64 = 0
    }

    /// What one item's points alone reference.
    private struct Held {
        var blocks = 0
        var bytes: Int64 = 0

        mutating func change(_ object: Object, chunk: Bool, by sign: Int) {
            if chunk { blocks += sign }
            bytes += Int64(sign) * object.size
        }
    }

    private struct State {
        /// False until the first full walk, and again when an update could not be applied exactly.
        var valid = false
        var nextOrdinal: UInt32 = 1
        var points: [String: Point] = [:]
        var ids: [UInt32: String] = [:]
        /// Items get small ordinals (1, 2, …) so that Σx² of an object stays far from overflow
        /// (below 2^56 with 65 536 items and 16 M points referencing one object).
        var itemOrdinals: [String: UInt32] = [:]
        var held: [UInt32: Held] = [:]
        var chunks: [ChunkID: Object] = [:]
        var indexes: [ChunkID: Object] = [:]
        /// Points whose manifest is damaged: left out (verify names them), not walked again.
        var damaged: Set<String> = []
        /// Points removed: a late `added` of one of them (an expiry that overtook it) is ignored.
        var removed: Set<String> = []
        /// Full walks so far (diagnostics and tests: a commit or an expiry must not cause one).
        var rebuilds = 0
    }

    private let state = Mutex(State())
    /// Held through a whole reconcile: two rebuilds at once would interleave their resets.
    private let reconciling = Mutex(())

    /// What a point references, each object once.
    struct References: Sendable {
        var chunks = Set<ChunkID>()
        var indexes = Set<ChunkID>()
    }

    // MARK: Reading

    /// The accounting of every live point, rebuilt first when it is not valid. **Blocks.**
    func accounting(vault: Vault) throws -> [String: PointAccounting] {
        try reconcile(vault: vault)
        return state.withLock { s in
            s.points.mapValues {
                PointAccounting(blocksAdded: $0.blocksAdded, blocksOnlyHere: $0.onlyHere, bytesFreedIfExpired: $0.freed)
            }
        }
    }

    /// Per protected item (the manifests' `item`): the data chunks and stored bytes (data and
    /// index) no point of another item references. Items without live points are absent. **Blocks.**
    func itemAccounting(vault: Vault) throws -> [String: ItemAccounting] {
        try reconcile(vault: vault)
        return state.withLock { s in
            let live = Set(s.points.values.map(\.item))
            var items: [String: ItemAccounting] = [:]
            for (item, ordinal) in s.itemOrdinals where live.contains(ordinal) {
                let held = s.held[ordinal] ?? Held()
                items[item] = ItemAccounting(blocksOnlyHere: held.blocks, bytesOnlyHere: held.bytes)
            }
            return items
        }
    }

    /// Brings the ledger in line with the manifests the store holds. **Blocks.**
    func reconcile(vault: Vault) throws {
        try reconciling.withLock { _ in try reconcileLocked(vault: vault) }
    }

    private func reconcileLocked(vault: Vault) throws {
        let names = Set(try vault.manifestNames())
        let (valid, known) = state.withLock { s in (s.valid, Set(s.points.keys).union(s.damaged)) }
        if valid && known.isSubset(of: names) {
            for name in names.subtracting(known) {
                guard let bytes = try vault.readManifest(name) else { continue }  // expired meanwhile
                do {
                    added(try RecoveryPointManifest.decode(bytes, name: name, with: CodecWorkspace(codec: vault.codec)),
                          vault: vault)
                } catch let error as CoffreError where error.code == .chunkDamaged {
                    state.withLock { _ = $0.damaged.insert(name) }
                }
            }
            // A new point whose index could not be walked (damaged) invalidated the ledger.
            if state.withLock({ $0.valid }) { return }
        }
        try rebuild(vault: vault)
    }

    /// How many times every point was walked.
    var rebuilds: Int { state.withLock { $0.rebuilds } }

    /// Walks every live point. **Blocks.**
    private func rebuild(vault: Vault) throws {
        state.withLock { s in s = State(rebuilds: s.rebuilds + 1) }
        let workspace = CodecWorkspace(codec: vault.codec)
        var damaged = Set<String>()
        for name in try vault.manifestNames() {
            guard let bytes = try vault.readManifest(name) else { continue }
            do {
                let manifest = try RecoveryPointManifest.decode(bytes, name: name, with: workspace)
                let references = try vault.references(of: manifest, with: workspace)
                apply(adding: manifest, references, sizes: sizesOfUnknown(references, vault: vault))
            } catch let error as CoffreError where error.code == .chunkDamaged || error.code == .chunkMissing {
                // Left out, as verify reports it: what it shares counts as held by the others alone.
                damaged.insert(name)
            }
        }
        state.withLock { s in
            s.damaged = damaged
            s.valid = true
        }
    }

    // MARK: Updates

    /// A point was committed (its manifest is written). **Blocks**: walks its index.
    func added(_ manifest: RecoveryPointManifest, vault: Vault) {
        guard state.withLock({ $0.valid }) else { return }  // the next read rebuilds anyway
        do {
            let references = try vault.references(of: manifest, with: CodecWorkspace(codec: vault.codec))
            apply(adding: manifest, references, sizes: sizesOfUnknown(references, vault: vault))
        } catch {
            invalidate()
        }
    }

    /// A point is about to be expired: what it references, walked while its index is still
    /// protected by its manifest. Nil when the walk fails (then `expired` invalidates).
    func referencesBeforeExpiry(of manifest: RecoveryPointManifest, vault: Vault) -> References? {
        guard state.withLock({ $0.valid }) else { return nil }
        return try? vault.references(of: manifest, with: CodecWorkspace(codec: vault.codec))
    }

    /// A point's manifest was removed.
    func expired(_ id: String, references: References?) {
        state.withLock { s in
            defer { s.removed.insert(id) }
            s.damaged.remove(id)
            guard s.valid, let point = s.points.removeValue(forKey: id) else { return }
            guard let references else {
                s.valid = false
                return
            }
            s.ids[point.ordinal] = nil
            func release(_ id: ChunkID, in objects: inout [ChunkID: Object], chunk: Bool) {
                guard var object = objects[id] else { return }
                let before = object.soleItem
                object.remove(point: point.ordinal, item: point.item)
                let after = object.soleItem
                if before != after {
                    if let before { s.held[before, default: Held()].change(object, chunk: chunk, by: -1) }
                    if let after { s.held[after, default: Held()].change(object, chunk: chunk, by: 1) }
                }
                if object.count == 0 {
                    objects[id] = nil
                    return
                }
                objects[id] = object
                // One referrer left: it now holds the object alone.
                if object.count == 1, let owner = s.ids[object.owners] {
                    if chunk { s.points[owner]?.onlyHere += 1 }
                    s.points[owner]?.freed += object.size
                }
            }
            for id in references.chunks { release(id, in: &s.chunks, chunk: true) }
            for id in references.indexes { release(id, in: &s.indexes, chunk: false) }
        }
    }

    /// Forgets everything: the next read walks every point again.
    func invalidate() {
        state.withLock { $0.valid = false }
    }

    // MARK: Applying

    /// The stored sizes of the referenced objects the ledger does not hold yet, read without
    /// holding the lock (one `stat` each).
    private func sizesOfUnknown(_ references: References, vault: Vault) -> [ChunkID: Int64] {
        let (chunks, indexes) = state.withLock { s in
            (references.chunks.filter { s.chunks[$0] == nil }, references.indexes.filter { s.indexes[$0] == nil })
        }
        var sizes: [ChunkID: Int64] = [:]
        for id in chunks { sizes[id] = vault.storedSize(.chunk, id) ?? 0 }
        for id in indexes { sizes[id] = vault.storedSize(.index, id) ?? 0 }
        return sizes
    }

    private func apply(adding manifest: RecoveryPointManifest, _ references: References, sizes: [ChunkID: Int64]) {
        state.withLock { s in
            guard s.points[manifest.id] == nil, !s.removed.contains(manifest.id) else { return }
            let ordinal = s.nextOrdinal
            s.nextOrdinal += 1
            s.ids[ordinal] = manifest.id
            let item = s.itemOrdinals[manifest.item] ?? UInt32(s.itemOrdinals.count + 1)
            s.itemOrdinals[manifest.item] = item
            var point = Point(ordinal: ordinal, item: item, blocksAdded: manifest.stats.blocksAdded)
            func hold(_ id: ChunkID, in objects: inout [ChunkID: Object], chunk: Bool) {
                var object = objects[id] ?? Object(count: 0, owners: 0, size: sizes[id] ?? 0)
                if object.count == 0 {
                    if chunk { point.onlyHere += 1 }
                    point.freed += object.size
                } else if object.count == 1, let owner = s.ids[object.owners] {
                    // Its only referrer shares it from now on.
                    if chunk { s.points[owner]?.onlyHere -= 1 }
                    s.points[owner]?.freed -= object.size
                }
                let before = object.soleItem
                object.add(point: ordinal, item: item)
                let after = object.soleItem
                if before != after {
                    if let before { s.held[before, default: Held()].change(object, chunk: chunk, by: -1) }
                    if let after { s.held[after, default: Held()].change(object, chunk: chunk, by: 1) }
                }
                objects[id] = object
            }
            for id in references.chunks { hold(id, in: &s.chunks, chunk: true) }
            for id in references.indexes { hold(id, in: &s.indexes, chunk: false) }
            s.points[manifest.id] = point
        }
    }
}

extension Vault {
    /// Every object a point references (its roots, pages and data chunks), each once, verified.
    /// **Blocks.**
    func references(of manifest: RecoveryPointManifest, with workspace: CodecWorkspace) throws -> AccountingLedger.References {
        var references = AccountingLedger.References()
        for disk in manifest.disks where references.indexes.insert(disk.rootID).inserted {
            for page in try loadIDs(disk.rootID, with: workspace) where references.indexes.insert(page).inserted {
                for id in try loadIDs(page, with: workspace) where !id.isZero { references.chunks.insert(id) }
            }
        }
        return references
    }
}
