import CoffreCore
import CoffreSystem
import Foundation
import Synchronization

extension Vault {
    /// Restores every disk of a point into `directory` as sparse raw files named after the
    /// disks, or qcow2 images (`DiskFormat.fileName(forDisk:)` names them).
    ///
    /// Every chunk read is verified against its id; any damage fails the restore and removes
    /// what it wrote — it never leaves a file with wrong content. Files appear under their
    /// final names only once complete and durable.
    /// - Returns: the paths written.
    @discardableResult
    public func restore(
        point id: String, to directory: String, format: DiskFormat = .raw, overwrite: Bool = false,
        progress: ProgressHandler? = nil
    ) async throws -> [String] {
        let plan = try await runOnThread { _ in try self.planRestore(point: id, to: directory, format: format, overwrite: overwrite) }
        do {
            let job = RestoreJob(vault: self, manifest: plan.manifest, sinks: plan.sinks, windows: plan.windows,
                                 avoiding: plan.session.avoiding, progress: progress)
            try await runParallel(plan.units, width: width, makeState: { [codec] in RestoreWorker(codec: codec) },
                                  body: { worker, unit in try job.process(unit, worker: worker) })
            try await runOnThread { _ in try plan.commit() }
            await runOnThread { _ in plan.close() }
            return plan.targets
        } catch {
            await runOnThread { _ in plan.close() }
            throw error
        }
    }

    /// Reads every block of a point from the store and checks it against its id, as a restore
    /// does, writing nothing (the data check of a Verify job). Damage throws `ChunkDamaged` or
    /// `ChunkMissing` naming the point, the disk and the block.
    /// - Returns: what was read: `scannedBytes` of disks, `readBytes` from the store.
    public func verifyPoint(_ id: String, progress: ProgressHandler? = nil) async throws -> TransferProgress {
        let plan = try await runOnThread { _ in try self.planRestore(point: id, to: nil, format: .raw, overwrite: false) }
        let job = RestoreJob(vault: self, manifest: plan.manifest, sinks: plan.sinks, windows: plan.windows,
                             avoiding: plan.session.avoiding, progress: progress)
        do {
            try await runParallel(plan.units, width: width, makeState: { [codec] in RestoreWorker(codec: codec) },
                                  body: { worker, unit in try job.process(unit, worker: worker) })
        } catch {
            await runOnThread { _ in plan.close() }
            throw error
        }
        await runOnThread { _ in plan.close() }
        return job.progressSoFar
    }

    /// Opens the partial files (none for `directory` nil: a verification) and a session that
    /// keeps the point's objects through a concurrent expiry and collection. **Blocks.**
    func planRestore(point id: String, to directory: String?, format: DiskFormat, overwrite: Bool) throws -> RestorePlan {
        let manifest = try point(id)
        let directory = directory.map(FileIO.absolutePath)
        if let directory { try FileIO.makeDirectory(directory) }
        let targets = directory.map { directory in manifest.disks.map { "\(directory)/\(format.fileName(forDisk: $0.name))" } } ?? []
        if !overwrite, let existing = targets.first(where: FileIO.exists) {
            throw CoffreError.restoreTargetExists(existing)
        }
        let plan = RestorePlan(manifest: manifest, directory: directory, targets: targets,
                               session: try VaultSession(vault: self, purpose: directory == nil ? "verify" : "restore",
                                                         protecting: manifest.disks.map(\.rootID)))
        do {
            // Expired between reading it and registering the session: its objects may be gone.
            guard try readManifest(id) != nil else { throw CoffreError.pointNotFound(id) }
            let workspace = CodecWorkspace(codec: codec)
            for (index, disk) in manifest.disks.enumerated() {
                if let directory {
                    let partial = "\(directory)/.\(disk.name).coffre-partial-\(randomHex(4))"
                    let fd = try FileIO.open(partial, [.readWrite, .create, .exclusive], mode: 0o600)
                    // Whole blocks bypass the page cache (see RestoreJob); -1 where the file system refuses O_DIRECT.
                    let direct = FileIO.openOptional(partial, [.writeOnly, .direct])
                    plan.opened(partial: partial, file: fd, direct: direct)
                    switch format {
                    case .raw:
                        try FileIO.truncate(fd, to: disk.size, path: partial)
                        plan.sinks.append(RawSink(file: fd, direct: direct, path: partial))
                    case .qcow2:
                        plan.sinks.append(try QCOW2Writer(file: fd, direct: direct, path: partial, size: disk.size, disk: disk.name))
                    }
                } else {
                    plan.sinks.append(DiscardingSink())
                }
                let pages = try loadIDs(disk.rootID, with: workspace, avoiding: plan.session.avoiding)
                let pageReader = try SegmentReader(vault: self, kind: .index, ids: pages, avoiding: plan.session.avoiding)
                for first in stride(from: 0, to: pages.count, by: RestoreWindow.pages) {
                    let window = RestoreWindow(pages: pageReader, first: first, count: min(RestoreWindow.pages, pages.count - first))
                    plan.units += (first..<first + window.count).map { RestoreUnit(disk: index, page: $0, window: plan.windows.count) }
                    plan.windows.append(window)
                }
            }
            return plan
        } catch {
            plan.close()
            throw error
        }
    }
}

/// The files and the session of one restore, from their opening to their renaming (or removal).
final class RestorePlan: @unchecked Sendable {
    // Set up by `planRestore` on one thread, read by the workers only after, closed once:
    // never mutated concurrently.
    let manifest: RecoveryPointManifest
    /// Nil for a verification: nothing is written.
    let directory: String?
    let targets: [String]
    let session: VaultSession
    var sinks: [any DiskSink] = []
    var windows: [RestoreWindow] = []
    var units: [RestoreUnit] = []
    private var files: [Int32] = []
    private var directFiles: [Int32] = []
    private var partials: [String] = []

    init(manifest: RecoveryPointManifest, directory: String?, targets: [String], session: VaultSession) {
        self.manifest = manifest
        self.directory = directory
        self.targets = targets
        self.session = session
    }

    func opened(partial: String, file: Int32, direct: Int32) {
        partials.append(partial)
        files.append(file)
        directFiles.append(direct)
    }

    /// Finishes each disk, makes it durable and gives it its final name. **Blocks.**
    func commit() throws {
        for (index, target) in targets.enumerated() {
            try sinks[index].finish()
            try FileIO.fsync(files[index], path: partials[index])
            try FileIO.rename(partials[index], to: target)
            partials[index] = ""
        }
        partials = []
        if let directory { try FileIO.fsyncDirectory(directory) }
    }

    /// Closes the files and the session; partial files not renamed are removed. Safe to call twice.
    func close() {
        (files + directFiles.filter { $0 >= 0 }).forEach(FileIO.close)
        files = []
        directFiles = []
        partials.filter { !$0.isEmpty }.forEach(FileIO.unlink)
        partials = []
        session.close()
    }
}

/// One page of one disk: the work of one worker at a time.
struct RestoreUnit: Sendable {
    var disk: Int
    var page: Int
    /// Its window in `RestoreJob.windows`.
    var window: Int
}

/// A few consecutive pages of one disk whose chunks are read as one plan (`SegmentReader`): a
/// backup's worker fills a pack with the end of one page and the start of the next it takes, and
/// such a pack is read once, not once per page. The plan is made by the first page to start,
/// and dropped when the last one ends.
final class RestoreWindow: Sendable {
    /// 2 GiB of disk; the plan holds about 50 bytes per block (1.6 MiB at 64 KiB blocks).
    static let pages = 32

    /// The disk's index pages (shared by its windows).
    let pageReader: SegmentReader
    let first: Int
    let count: Int

    private struct Plan {
        var entries: [[ChunkID]]
        var reader: SegmentReader
    }
    private struct State {
        var plan: Plan?
        var remaining: Int
    }
    private let state: Mutex<State>

    init(pages: SegmentReader, first: Int, count: Int) {
        pageReader = pages
        self.first = first
        self.count = count
        state = Mutex(State(remaining: count))
    }

    /// The entries of `page` and the reader of the window's chunks, where the page's first item
    /// is `offset`. **Blocks** (the first caller reads the window's pages and plans; the others
    /// wait for it).
    func open(_ page: Int, workspace: CodecWorkspace, avoiding: Set<PackID>) throws
        -> (entries: [ChunkID], reader: SegmentReader, offset: Int) {
        let plan = try state.withLock { state -> Plan in
            if let plan = state.plan { return plan }
            let entries = try (first..<first + count).map { try pageReader.loadIDs($0, with: workspace) }
            // A read serves at most 4 pages: enough for a pack a backup filled across pages, and an
            // incremental's pack of changes is not held for the whole window.
            let reader = try SegmentReader(vault: pageReader.vault, kind: .chunk, ids: Array(entries.joined()),
                                           avoiding: avoiding, itemSpan: 4 * (entries.first?.count ?? 1))
            let plan = Plan(entries: entries, reader: reader)
            state.plan = plan
            return plan
        }
        let index = page - first
        return (plan.entries[index], plan.reader, plan.entries[..<index].reduce(0) { $0 + $1.count })
    }

    /// A page is done (or failed): the last one drops the plan.
    func finished() {
        state.withLock { state in
            state.remaining -= 1
            if state.remaining == 0 { state.plan = nil }
        }
    }
}

/// Per-thread state of a restore: a codec workspace and an aligned buffer that gathers runs of
/// consecutive blocks into one direct write.
final class RestoreWorker {
    static let bufferSize = 4 << 20
    let workspace: CodecWorkspace
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: RestoreWorker.bufferSize, alignment: 4096)
    var runStart: Int64 = 0
    var runLength = 0

    init(codec: ChunkCodec) {
        workspace = CodecWorkspace(codec: codec)
    }

    deinit { buffer.deallocate() }
}

/// The shared state of one restore run.
///
/// Whole blocks are written with O_DIRECT, in runs of up to 4 MiB: a restore writes gigabytes
/// that nobody will read back soon, and pushing them through the page cache cost 2–3× the CPU
/// of the rest of the restore on the benchmark machine (docs/benchmarks.md). A disk's final
/// partial block, and file systems without O_DIRECT, use the buffered descriptor.
final class RestoreJob: Sendable {
    let vault: Vault
    let manifest: RecoveryPointManifest
    let sinks: [any DiskSink]
    let windows: [RestoreWindow]
    let progress: ProgressHandler?
    /// Condemned packs when the restore started: read from only when no other copy exists.
    let avoiding: Set<PackID>
    private let state: Mutex<TransferProgress>

    init(vault: Vault, manifest: RecoveryPointManifest, sinks: [any DiskSink], windows: [RestoreWindow],
         avoiding: Set<PackID>, progress: ProgressHandler?) {
        self.vault = vault
        self.windows = windows
        self.avoiding = avoiding
        self.manifest = manifest
        self.sinks = sinks
        self.progress = progress
        var total = TransferProgress()
        total.totalBytes = manifest.logicalBytes
        state = Mutex(total)
    }

    /// The progress of every unit processed so far.
    var progressSoFar: TransferProgress { state.withLock { $0 } }

    func process(_ unit: RestoreUnit, worker: RestoreWorker) throws {
        let disk = manifest.disks[unit.disk]
        let blockSize = Int64(manifest.blockSize)
        let start = Int64(unit.page) * Int64(manifest.pageEntries) * blockSize
        let window = windows[unit.window]
        defer { window.finished() }
        let (entries, reader, first) = try window.open(unit.page, workspace: worker.workspace, avoiding: avoiding)
        let sink = sinks[unit.disk]
        var local = TransferProgress()
        local.scannedBytes = min(disk.size, start + Int64(entries.count) * blockSize) - start

        func flush() throws {
            guard worker.runLength > 0 else { return }
            let run = UnsafeRawBufferPointer(rebasing: worker.buffer[0..<worker.runLength])
            try sink.write(run, at: worker.runStart, direct: true)
            worker.runLength = 0
        }
        for (b, id) in entries.enumerated() {
            guard !id.isZero else {
                try flush()  // a hole: the next block starts a new run
                continue
            }
            let offset = start + Int64(b) * blockSize
            let expected = Int(min(blockSize, disk.size - offset))
            do {
                try reader.withFrame(first + b) { frame in
                local.readBytes += Int64(frame.count)
                try worker.workspace.decode(frame, id: id, kind: .chunk) { block in
                    guard block.count == expected else {
                        throw CoffreError.chunkDamaged(id.hex, detail: "wrong length for block \(offset / blockSize) of \(disk.name)")
                    }
                    guard sink.writesDirect, expected == Int(blockSize) else {
                        try sink.write(block, at: offset, direct: false)
                        return
                    }
                    if worker.runLength + expected > RestoreWorker.bufferSize { try flush() }
                    if worker.runLength == 0 { worker.runStart = offset }
                    (worker.buffer.baseAddress! + worker.runLength).copyMemory(from: block.baseAddress!, byteCount: expected)
                    worker.runLength += expected
                }
                }
            } catch var error as CoffreError where error.code == .chunkMissing || error.code == .chunkDamaged {
                error.message += " (point \(manifest.id), disk \(disk.name), block \(offset / blockSize))"
                throw error
            }
            local.writtenBytes += Int64(expected)
        }
        try flush()
        let snapshot = state.withLock { s -> TransferProgress in
            s.scannedBytes += local.scannedBytes
            s.readBytes += local.readBytes
            s.writtenBytes += local.writtenBytes
            return s
        }
        progress?(snapshot)
    }
}

/// Where a restore writes one disk: at the disk's offsets, from several threads, each byte once.
protocol DiskSink: Sendable {
    /// Whether `write(_:at:direct: true)` bypasses the page cache (the file system takes O_DIRECT).
    var writesDirect: Bool { get }
    /// Writes `bytes` at the disk's `offset`; `direct` writes need 4 KiB-aligned offset and length.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64, direct: Bool) throws
    /// Called once every write is done, before the file is made durable.
    func finish() throws
}

/// A sparse raw file, already as long as the disk.
struct RawSink: DiskSink {
    let file: Int32
    let direct: Int32
    let path: String

    var writesDirect: Bool { direct >= 0 }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64, direct useDirect: Bool) throws {
        try FileIO.pwrite(useDirect && direct >= 0 ? direct : file, bytes, at: offset, path: path)
    }

    func finish() throws {}
}

/// Where a verification's blocks go once checked: nowhere.
struct DiscardingSink: DiskSink {
    var writesDirect: Bool { false }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64, direct: Bool) throws {}
    func finish() throws {}
}

extension QCOW2Writer: DiskSink {
    var writesDirect: Bool { hasDirect }
}
