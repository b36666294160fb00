public import CoffreCore
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

        let workspace = CodecWorkspace(codec: codec)
        var files: [Int32] = []
        var partials: [String] = []
        defer {
            files.forEach { close($0) }
            partials.forEach { unlink($0) }
        }
        var units: [RestoreUnit] = []
        for (index, disk) in manifest.disks.enumerated() {
            let partial = "\(directory)/.\(disk.name).coffre-partial-\(randomHex(4))"
            let fd = try FileIO.open(partial, O_RDWR | O_CREAT | O_EXCL, mode: 0o600)
            files.append(fd)
            partials.append(partial)
            if ftruncate(fd, off_t(disk.size)) != 0 { throw CoffreError.io("truncate", partial, errno: errno) }
            let pages = try loadIDs(disk.rootID, with: workspace)
            units += pages.enumerated().map { RestoreUnit(disk: index, page: $0.offset, pageID: $0.element) }
        }

        let job = RestoreJob(vault: self, manifest: manifest, files: files, paths: partials, progress: progress)
        try await runParallel(units, width: width, makeState: { [codec] in CodecWorkspace(codec: codec) },
                              body: { workspace, unit in try job.process(unit, workspace: workspace) })

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

/// The shared state of one restore run.
final class RestoreJob: Sendable {
    let vault: Vault
    let manifest: RecoveryPointManifest
    let files: [Int32]
    let paths: [String]
    let progress: ProgressHandler?
    private let state: Mutex<TransferProgress>

    init(vault: Vault, manifest: RecoveryPointManifest, files: [Int32], paths: [String], progress: ProgressHandler?) {
        self.vault = vault
        self.manifest = manifest
        self.files = files
        self.paths = paths
        self.progress = progress
        var total = TransferProgress()
        total.totalBytes = manifest.logicalBytes
        state = Mutex(total)
    }

    func process(_ unit: RestoreUnit, workspace: CodecWorkspace) throws {
        let disk = manifest.disks[unit.disk]
        let blockSize = Int64(manifest.blockSize)
        let start = Int64(unit.page) * Int64(manifest.pageEntries) * blockSize
        let entries = try vault.loadIDs(unit.pageID, with: workspace)
        var local = TransferProgress()
        local.scannedBytes = min(disk.size, start + Int64(entries.count) * blockSize) - start
        for (b, id) in entries.enumerated() where !id.isZero {
            let offset = start + Int64(b) * blockSize
            let expected = Int(min(blockSize, disk.size - offset))
            do {
                guard let frame = try vault.store.read(.chunk, id) else { throw CoffreError.chunkMissing(id.hex) }
                local.readBytes += Int64(frame.count)
                try workspace.decode(frame, id: id, kind: .chunk) { block in
                    guard block.count == expected else {
                        throw CoffreError.chunkDamaged(id.hex, detail: "wrong length for block \(offset / blockSize) of \(disk.name)")
                    }
                    try FileIO.pwrite(files[unit.disk], block, at: offset, path: paths[unit.disk])
                }
            } catch let error as CoffreError where error.code == "ChunkMissing" || error.code == "ChunkDamaged" {
                throw CoffreError(error.code,
                                  "\(error.message) (point \(manifest.id), disk \(disk.name), block \(offset / blockSize))",
                                  workaround: error.workaround)
            }
            local.writtenBytes += Int64(expected)
        }
        let snapshot = state.withLock { s -> TransferProgress in
            s.scannedBytes += local.scannedBytes
            s.readBytes += local.readBytes
            s.writtenBytes += local.writtenBytes
            return s
        }
        progress?(snapshot)
    }
}
