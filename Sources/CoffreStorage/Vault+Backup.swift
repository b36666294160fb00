public import CoffreCore
import CoffreSystem
import Foundation
import Synchronization

extension Vault {
    /// Backs up disks as a new recovery point of `request.item`, compared with `request.base`.
    ///
    /// Each allocated block is read and hashed; a block equal to the same block of the base
    /// point is reused without touching the store, other blocks are stored unless the vault
    /// already holds them. A `ChangeTrackingDevice` whose changes count from the base point is
    /// read only where it changed; its other blocks are taken from that point. Zero blocks and
    /// holes are recorded as zero entries. All disks are processed at once by `width` workers,
    /// with memory independent of disk size. The point exists only once every object is
    /// durable and its manifest is written; on error or cancellation nothing of it is visible.
    /// Blocking work (the store's files, its locks) runs on threads of its own.
    public func backup(_ request: BackupRequest, progress: ProgressHandler? = nil) async throws -> RecoveryPointManifest {
        guard Naming.isValid(request.item) else { throw CoffreError.invalidName("Item name", request.item) }
        guard !request.disks.isEmpty else { throw CoffreError(.noDisks, "A backup needs at least one disk") }
        var seen = Set<String>()
        for disk in request.disks {
            guard Naming.isValid(disk.name) else { throw CoffreError.invalidName("Disk name", disk.name) }
            guard seen.insert(disk.name).inserted else { throw CoffreError.duplicateDiskName(disk.name) }
        }
        let started = ContinuousClock.now
        let requestsBefore = store.requests
        let plan = try await runOnThread { _ in try self.planBackup(request) }
        do {
            let job = BackupJob(vault: self, session: plan.session, disks: request.disks, basePages: plan.basePages,
                                changesOnly: plan.changesOnly, progress: progress)
            try await runParallel(job.units, width: width, makeState: { [codec, blockSize] in
                BackupWorker(codec: codec, blockSize: blockSize, writer: plan.session.makeWriter())
            }, body: { worker, unit in
                try job.process(unit, worker: &worker)
            })
            let seconds = (ContinuousClock.now - started).inSeconds
            let manifest = try await runOnThread { _ in
                let manifest = try self.commitBackup(request, plan: plan, job: job, seconds: seconds)
                self.recordRequests("backup", since: requestsBefore, point: manifest.id, bytesRead: manifest.stats.bytesRead)
                return manifest
            }
            await runOnThread { _ in plan.session.close() }
            return manifest
        } catch {
            await runOnThread { _ in plan.session.close() }
            throw error
        }
    }

    /// Backs up as the command line does: compared with the item's latest readable point, taken now.
    public func backup(item: String, disks: [any BlockDevice], progress: ProgressHandler? = nil) async throws -> RecoveryPointManifest {
        let base = try await runOnThread { _ in try self.points(item: item, skippingDamaged: true).last?.id }
        return try await backup(BackupRequest(item: item, disks: disks, base: base, time: Date()), progress: progress)
    }

    /// What a backup compares with, decided before any block is read.
    struct BackupPlan: Sendable {
        var base: RecoveryPointManifest?
        var session: VaultSession
        /// The base point's pages per disk name, their ids and their reads (shared by the
        /// workers): a 2 TiB disk has 32 K pages, 1 MiB of ids.
        var basePages: [String: SegmentReader]
        /// Per disk: read only its changed ranges, take the rest from the base.
        var changesOnly: [Bool]
        /// Per disk: why changed ranges it offered were not used.
        var fullReadReasons: [String?]
    }

    /// Loads the requested base point and opens a session that protects its index, so a
    /// concurrent expiry and collection cannot take what the backup reuses. A base that cannot
    /// be read, or that expired before the session protected it, is not used: the backup reads
    /// in full and says why. **Blocks.**
    func planBackup(_ request: BackupRequest) throws -> BackupPlan {
        var base: RecoveryPointManifest?
        var problem: String?
        if let id = request.base {
            do {
                let manifest = try point(id)
                if manifest.item == request.item {
                    base = manifest
                } else {
                    problem = "the point \(id) belongs to \(manifest.item), not \(request.item)"
                }
            } catch let error as CoffreError {
                problem = "the point \(id) cannot be used as the base: \(error.message)"
            }
        }
        let session = try VaultSession(vault: self, purpose: "backup", protecting: base?.disks.map(\.rootID) ?? [])
        do {
            if let chosen = base, try readManifest(chosen.id) == nil {
                problem = "the point \(chosen.id) expired while the backup started"
                base = nil
            }
            if let chosen = base, chosen.blockSize != blockSize {
                problem = "the point \(chosen.id) has \(ByteSize.format(Int64(chosen.blockSize))) blocks, the vault \(ByteSize.format(Int64(blockSize)))"
                base = nil
            }
            let workspace = CodecWorkspace(codec: codec)
            var basePages: [String: SegmentReader] = [:]
            for disk in base?.disks ?? [] {
                basePages[disk.name] = try SegmentReader(vault: self, kind: .index,
                                                         ids: loadIDs(disk.rootID, with: workspace), avoiding: [])
            }
            // Changes are trusted only against the very point they count from, disk by disk.
            var changesOnly: [Bool] = []
            var reasons: [String?] = []
            for disk in request.disks {
                guard let tracking = disk as? any ChangeTrackingDevice else {
                    changesOnly.append(false)
                    reasons.append(nil)
                    continue
                }
                let reason: String? = if let base {
                    if tracking.changesSince != base.id {
                        "the changes of disk \(disk.name) count from point \(tracking.changesSince), the backup compares with \(base.id)"
                    } else if !base.disks.contains(where: { $0.name == disk.name && $0.size == disk.size }) {
                        "disk \(disk.name) is new or changed size since point \(base.id)"
                    } else {
                        nil
                    }
                } else {
                    problem ?? "no point to compare with"
                }
                changesOnly.append(reason == nil)
                reasons.append(reason)
            }
            return BackupPlan(base: base, session: session, basePages: basePages, changesOnly: changesOnly,
                              fullReadReasons: reasons)
        } catch {
            session.close()
            throw error
        }
    }

    /// Writes the disks' roots, publishes every object, then the manifest: only now does the
    /// point exist. **Blocks.**
    func commitBackup(_ request: BackupRequest, plan: BackupPlan, job: BackupJob, seconds: Double) throws -> RecoveryPointManifest {
        let workspace = CodecWorkspace(codec: codec)
        var records: [RecoveryPointManifest.Disk] = []
        for (index, disk) in request.disks.enumerated() {
            let pages = job.pageIDs(disk: index)
            let rootBytes = DiskIndex.encode(pages)
            let rootID = codec.id(of: rootBytes)
            try job.storeIndexObject(rootBytes, id: rootID, workspace: workspace)
            let counts = job.diskCounts(index)
            records.append(.init(name: disk.name, size: disk.size, root: rootID.hex,
                                 blocks: counts.blocks, zeroBlocks: counts.zeroBlocks,
                                 readChangesOnly: plan.changesOnly[index], fullReadReason: plan.fullReadReasons[index]))
        }
        try plan.session.publish()

        let totals = job.totals
        let manifest = RecoveryPointManifest(
            id: RecoveryPointManifest.makeID(at: request.time), item: request.item, time: request.time,
            blockSize: blockSize, pageEntries: pageEntries, base: plan.base?.id, disks: records,
            stats: .init(blocksAdded: totals.blocksAdded, blocksChanged: totals.blocksChanged,
                         bytesRead: totals.progress.readBytes, bytesWritten: totals.progress.writtenBytes,
                         indexObjectsAdded: totals.indexObjectsAdded, seconds: seconds,
                         changedOnlyDisks: plan.changesOnly.filter { $0 }.count))
        guard try store.put(Self.pointsFolder + manifest.id, try manifest.encoded(with: workspace), mode: .create) else {
            throw CoffreError(.backupInternalError, "A point named \(manifest.id) exists already", workaround: "Run the backup again")
        }
        ledger.added(manifest, vault: self)
        return manifest
    }
}

/// One index page's worth of one disk: the unit of parallel work.
struct BackupUnit: Sendable {
    var disk: Int
    var page: Int
}

/// Per-thread scratch state of a backup.
struct BackupWorker {
    let workspace: CodecWorkspace
    var block: [UInt8]
    /// Where this worker's new objects go.
    let writer: PackWriter

    init(codec: ChunkCodec, blockSize: Int, writer: PackWriter) {
        workspace = CodecWorkspace(codec: codec)
        block = [UInt8](repeating: 0, count: blockSize)
        self.writer = writer
    }
}

/// The shared state of one backup run.
final class BackupJob: Sendable {
    struct Totals {
        var progress = TransferProgress()
        var blocksAdded = 0
        var blocksChanged = 0
        var indexObjectsAdded = 0
        var blocks: [Int]
        var zeroBlocks: [Int]
    }

    let vault: Vault
    let session: VaultSession
    let disks: [any BlockDevice]
    /// The base point's pages per disk name (`BackupPlan.basePages`).
    let basePages: [String: SegmentReader]
    /// Per disk: read only its changed ranges, take the rest from the base point.
    let changesOnly: [Bool]
    let progress: ProgressHandler?
    let units: [BackupUnit]
    private let pages: Mutex<[[ChunkID]]>
    private let state: Mutex<Totals>

    init(vault: Vault, session: VaultSession, disks: [any BlockDevice],
         basePages: [String: SegmentReader], changesOnly: [Bool], progress: ProgressHandler?) {
        self.vault = vault
        self.session = session
        self.disks = disks
        self.basePages = basePages
        self.changesOnly = changesOnly
        self.progress = progress
        let span = Int64(vault.pageEntries * vault.blockSize)
        var units: [BackupUnit] = []
        var pages: [[ChunkID]] = []
        for (index, disk) in disks.enumerated() {
            let count = Int((disk.size + span - 1) / span)
            pages.append([ChunkID](repeating: .zero, count: count))
            units += (0..<count).map { BackupUnit(disk: index, page: $0) }
        }
        // Interleave disks so that all of them progress together (B2).
        self.units = units.sorted { ($0.page, $0.disk) < ($1.page, $1.disk) }
        self.pages = Mutex(pages)
        var totals = Totals(blocks: Array(repeating: 0, count: disks.count),
                            zeroBlocks: Array(repeating: 0, count: disks.count))
        totals.progress.totalBytes = disks.reduce(0) { $0 + $1.size }
        self.state = Mutex(totals)
    }

    var totals: Totals { state.withLock { $0 } }
    func pageIDs(disk: Int) -> [ChunkID] { pages.withLock { $0[disk] } }
    func diskCounts(_ disk: Int) -> (blocks: Int, zeroBlocks: Int) {
        state.withLock { ($0.blocks[disk], $0.zeroBlocks[disk]) }
    }

    /// Hashes, compares and stores the blocks of one index page, then the page itself.
    func process(_ unit: BackupUnit, worker: inout BackupWorker) throws {
        let disk = disks[unit.disk]
        let blockSize = vault.blockSize
        let firstBlock = unit.page * vault.pageEntries
        let start = Int64(firstBlock) * Int64(blockSize)
        let end = min(disk.size, start + Int64(vault.pageEntries) * Int64(blockSize))
        let count = Int((end - start + Int64(blockSize) - 1) / Int64(blockSize))

        let basePageID = basePages[disk.name].flatMap { unit.page < $0.ids.count ? $0.ids[unit.page] : nil }
        // Changed ranges only when the base point is the one they count from (see `backup`).
        let changes = changesOnly[unit.disk] ? try (disk as? any ChangeTrackingDevice)?.changedExtents(in: start..<end) : nil
        if let changes, changes.isEmpty, let basePageID {
            try reuse(basePageID, unit: unit, count: count, scanned: end - start, workspace: worker.workspace)
            return
        }
        var baseEntries: [ChunkID] = []
        if let basePageID, !basePageID.isZero {
            baseEntries = try basePage(unit, workspace: worker.workspace)
        }
        let extents = try disk.dataExtents(in: start..<end)
        var changeIndex = 0

        var entries = [ChunkID](repeating: .zero, count: count)
        var local = TransferProgress()
        var added = 0, changed = 0, zeros = 0
        var extentIndex = 0
        for b in 0..<count {
            let offset = start + Int64(b) * Int64(blockSize)
            let length = Int(min(Int64(blockSize), end - offset))
            local.scannedBytes += Int64(length)
            if let changes {
                while changeIndex < changes.count, changes[changeIndex].upperBound <= offset { changeIndex += 1 }
                let changed = changeIndex < changes.count && changes[changeIndex].lowerBound < offset + Int64(length)
                if !changed {
                    // Unchanged since the base point: its entry, without reading.
                    let entry = b < baseEntries.count ? baseEntries[b] : .zero
                    entries[b] = entry
                    if entry.isZero { zeros += 1 }
                    continue
                }
            }
            while extentIndex < extents.count, extents[extentIndex].upperBound <= offset { extentIndex += 1 }
            guard extentIndex < extents.count, extents[extentIndex].lowerBound < offset + Int64(length) else {
                zeros += 1
                continue  // a hole: reads as zeros
            }
            let id: ChunkID? = try worker.block.withUnsafeMutableBytes { raw in
                let buffer = UnsafeMutableRawBufferPointer(rebasing: raw[0..<length])
                try disk.read(into: buffer, at: offset)
                if FileIO.isZero(UnsafeRawBufferPointer(buffer)) { return nil }
                return vault.codec.id(of: UnsafeRawBufferPointer(buffer))
            }
            local.readBytes += Int64(length)
            guard let id else {
                zeros += 1
                continue
            }
            entries[b] = id
            if b < baseEntries.count, baseEntries[b] == id { continue }
            changed += 1
            if try session.contains(.chunk, id) || !session.claim(.chunk, id) { continue }
            let written = try worker.block.withUnsafeBytes { raw in
                try stage(.chunk, id, UnsafeRawBufferPointer(rebasing: raw[0..<length]), workspace: worker.workspace,
                          writer: worker.writer)
            }
            added += 1
            local.writtenBytes += written
        }

        let pageBytes = DiskIndex.encode(entries)
        let pageID = vault.codec.id(of: pageBytes)
        if pageID != basePageID {
            try storeIndexObject(pageBytes, id: pageID, workspace: worker.workspace)
        }
        pages.withLock { $0[unit.disk][unit.page] = pageID }
        let snapshot = state.withLock { s -> TransferProgress in
            s.progress.scannedBytes += local.scannedBytes
            s.progress.readBytes += local.readBytes
            s.progress.writtenBytes += local.writtenBytes
            s.blocksAdded += added
            s.blocksChanged += changed
            s.blocks[unit.disk] += count
            s.zeroBlocks[unit.disk] += zeros
            return s.progress
        }
        progress?(snapshot)
    }

    /// A page with no change since the base point: the base's page as it is, nothing read.
    private func reuse(_ pageID: ChunkID, unit: BackupUnit, count: Int, scanned: Int64, workspace: CodecWorkspace) throws {
        let zeros = pageID.isZero ? count : try basePage(unit, workspace: workspace).filter(\.isZero).count
        pages.withLock { $0[unit.disk][unit.page] = pageID }
        let snapshot = state.withLock { s -> TransferProgress in
            s.progress.scannedBytes += scanned
            s.blocks[unit.disk] += count
            s.zeroBlocks[unit.disk] += zeros
            return s.progress
        }
        progress?(snapshot)
    }

    /// The ids of the base point's page for `unit`, which has one (each unit asks once). **Blocks.**
    private func basePage(_ unit: BackupUnit, workspace: CodecWorkspace) throws -> [ChunkID] {
        try basePages[disks[unit.disk].name]!.loadIDs(unit.page, with: workspace)
    }

    /// Encodes an object into the worker's pack; returns the bytes written.
    private func stage(
        _ kind: ObjectKind, _ id: ChunkID, _ plain: UnsafeRawBufferPointer, workspace: CodecWorkspace, writer: PackWriter
    ) throws -> Int64 {
        try workspace.encode(plain, id: id, kind: kind) { frame in
            try writer.append(kind, id, frame: frame)
            return Int64(frame.count)
        }
    }

    /// Stores an index object (a page or a root) unless the vault or this session has it, in
    /// the session's index pack.
    func storeIndexObject(_ bytes: [UInt8], id: ChunkID, workspace: CodecWorkspace) throws {
        if try session.contains(.index, id) || !session.claim(.index, id) { return }
        let written = try bytes.withUnsafeBytes { plain in
            try workspace.encode(plain, id: id, kind: .index) { frame in
                try session.appendIndexObject(id, frame: frame)
                return Int64(frame.count)
            }
        }
        state.withLock {
            $0.indexObjectsAdded += 1
            $0.progress.writtenBytes += written
        }
    }
}
