import CoffreCore
import CShims
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension Vault {
    /// Restores every disk of a point into `directory` as sparse raw files named after the disks.
    ///
    /// Every chunk read is verified against its id; any damage fails the restore and removes
    /// what it wrote — it never leaves a file with wrong content. Files appear under their
    /// final names only once complete and durable.
    /// - Returns: the paths written.
    @discardableResult
    public func restore(
        point id: String, to directory: String, overwrite: Bool = false, progress: ProgressHandler? = nil
    ) async throws -> [String] {
        let manifest = try point(id)
        let directory = FileIO.absolutePath(directory)
        try FileIO.makeDirectory(directory)
        let targets = manifest.disks.map { "\(directory)/\($0.name)" }
        if !overwrite, let existing = targets.first(where: FileIO.exists) {
            throw CoffreError.restoreTargetExists(existing)
        }
        // Keeps the point's objects through a concurrent expiry and collection.
        let session = try store.beginSession(purpose: "restore", protecting: manifest.disks.map(\.rootID))
        defer { session.close() }
        // Expired between reading it and registering the session: its objects may be gone.
        guard try store.readManifest(id) != nil else { throw CoffreError.pointNotFound(id) }

        let workspace = CodecWorkspace(codec: codec)
        var files: [Int32] = []
        var directFiles: [Int32] = []
        var partials: [String] = []
        defer {
            (files + directFiles.filter { $0 >= 0 }).forEach { close($0) }
            partials.forEach { unlink($0) }
        }
        var units: [RestoreUnit] = []
        for (index, disk) in manifest.disks.enumerated() {
            let partial = "\(directory)/.\(disk.name).coffre-partial-\(randomHex(4))"
            let fd = try FileIO.open(partial, O_RDWR | O_CREAT | O_EXCL, mode: 0o600)
            files.append(fd)
            partials.append(partial)
            if ftruncate(fd, off_t(disk.size)) != 0 { throw CoffreError.io("truncate", partial, errno: errno) }
            // Whole blocks bypass the page cache (see RestoreJob); -1 where the file system refuses O_DIRECT.
            directFiles.append(Glibc.open(partial, O_WRONLY | coffre_O_DIRECT | O_CLOEXEC))
            let pages = try loadIDs(disk.rootID, with: workspace)
            units += pages.enumerated().map { RestoreUnit(disk: index, page: $0.offset, pageID: $0.element) }
        }

        let job = RestoreJob(vault: self, manifest: manifest, files: files, directFiles: directFiles,
                             paths: partials, progress: progress)
        try await runParallel(units, width: width, makeState: { [codec] in RestoreWorker(codec: codec) },
                              body: { worker, unit in try job.process(unit, worker: worker) })

        for (index, target) in targets.enumerated() {
            try FileIO.fsync(files[index], path: partials[index])
            if rename(partials[index], target) != 0 { throw CoffreError.io("rename", target, errno: errno) }
        }
        partials = []
        try FileIO.fsyncDirectory(directory)
        return targets
    }
}

struct RestoreUnit: Sendable {
    var disk: Int
    var page: Int
    var pageID: ChunkID
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
    let files: [Int32]
    let directFiles: [Int32]
    let paths: [String]
    let progress: ProgressHandler?
    private let state: Mutex<TransferProgress>

    init(vault: Vault, manifest: RecoveryPointManifest, files: [Int32], directFiles: [Int32], paths: [String],
         progress: ProgressHandler?) {
        self.vault = vault
        self.manifest = manifest
        self.files = files
        self.directFiles = directFiles
        self.paths = paths
        self.progress = progress
        var total = TransferProgress()
        total.totalBytes = manifest.logicalBytes
        state = Mutex(total)
    }

    func process(_ unit: RestoreUnit, worker: RestoreWorker) throws {
        let disk = manifest.disks[unit.disk]
        let blockSize = Int64(manifest.blockSize)
        let start = Int64(unit.page) * Int64(manifest.pageEntries) * blockSize
        let entries = try vault.loadIDs(unit.pageID, with: worker.workspace)
        let file = files[unit.disk], direct = directFiles[unit.disk], path = paths[unit.disk]
        var local = TransferProgress()
        local.scannedBytes = min(disk.size, start + Int64(entries.count) * blockSize) - start

        func flush() throws {
            guard worker.runLength > 0 else { return }
            let run = UnsafeRawBufferPointer(rebasing: worker.buffer[0..<worker.runLength])
            try FileIO.pwrite(direct, run, at: worker.runStart, path: path)
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
                guard let frame = try vault.store.read(.chunk, id) else { throw CoffreError.chunkMissing(id.hex) }
                local.readBytes += Int64(frame.count)
                try worker.workspace.decode(frame, id: id, kind: .chunk) { block in
                    guard block.count == expected else {
                        throw CoffreError.chunkDamaged(id.hex, detail: "wrong length for block \(offset / blockSize) of \(disk.name)")
                    }
                    guard direct >= 0, expected == Int(blockSize) else {
                        try FileIO.pwrite(file, block, at: offset, path: path)
                        return
                    }
                    if worker.runLength + expected > RestoreWorker.bufferSize { try flush() }
                    if worker.runLength == 0 { worker.runStart = offset }
                    (worker.buffer.baseAddress! + worker.runLength).copyMemory(from: block.baseAddress!, byteCount: expected)
                    worker.runLength += expected
                }
            } catch let error as CoffreError where error.code == "ChunkMissing" || error.code == "ChunkDamaged" {
                throw CoffreError(error.code,
                                  "\(error.message) (point \(manifest.id), disk \(disk.name), block \(offset / blockSize))",
                                  workaround: error.workaround)
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
