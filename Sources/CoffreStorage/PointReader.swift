public import CoffreCore
import CoffreSystem
import Foundation
import Synchronization

extension Vault {
    /// Opens a point for random-access reads of its disks (a mount, an NBD export). The point
    /// and everything it references stay in the vault until the reader is closed, through any
    /// expiry and collection. **Blocks.**
    public func openPoint(_ id: String, cacheBytes: Int = PointReader.defaultCacheBytes) throws -> PointReader {
        let manifest = try point(id)
        let session = try VaultSession(vault: self, purpose: "read", protecting: manifest.disks.map(\.rootID))
        do {
            // Expired between reading it and registering the session: its objects may be gone.
            guard try readManifest(id) != nil else { throw CoffreError.pointNotFound(id) }
            return PointReader(vault: self, manifest: manifest, session: session, cacheBytes: cacheBytes)
        } catch {
            session.close()
            throw error
        }
    }
}

/// Random-access reads of one point's disks: what a mount or an NBD export serves.
///
/// - Every block is read from the vault and verified against its id, as in a restore; a damaged
///   or missing block fails the read (`ChunkDamaged`, `ChunkMissing`), never returns wrong bytes.
/// - Blocks read are kept in a cache of at most `cacheBytes`, oldest out first, and index pages
///   in a small one of their own.
/// - A read that continues where the last one on its disk ended is taken for a sequential
///   stream: the blocks after it are planned and read with it (`ReadPlan`: a few large reads
///   per pack, up to the store's read limit), so a file copied out of a mount costs a request per
///   pack, not one per block. Other reads fetch their blocks alone.
/// - The point is protected by a session, whose record a thread of the reader refreshes once a
///   minute (a reader may stay open for hours, and another host's collection knows it only by
///   that record).
///
/// Methods block (the store); call them from threads of one's own. Safe from several threads.
public final class PointReader: PointDisks {
    public static let defaultCacheBytes = 64 << 20
    /// Index pages kept decoded (32 KiB each at 64 KiB blocks: 4 GiB of disk).
    static let cachedPages = 64

    public let manifest: RecoveryPointManifest
    let vault: Vault
    let session: VaultSession
    let cacheBytes: Int
    private let state: Mutex<State>
    private let workspaces: Mutex<[PooledWorkspace]> = Mutex([])
    private let stopped = Atomic(false)

    private struct Key: Hashable {
        var disk: Int
        var block: Int
    }

    private struct State {
        /// Decoded blocks; nil values are not stored (zero blocks are known from the page).
        var blocks: [Key: [UInt8]] = [:]
        var order: [Key] = []
        var orderStart = 0
        var bytes = 0
        var pages: [Key: [ChunkID]] = [:]
        var pageOrder: [Key] = []
        /// Frames read ahead and not decoded yet: the thread that needs a block decodes and
        /// verifies it, so a stream's decoding spreads over the threads serving it.
        var frames: [Key: (id: ChunkID, frame: [UInt8])] = [:]
        var frameOrder: [Key] = []
        var frameStart = 0
        var frameBytes = 0
        /// Blocks whose read is under way: a thread needing one waits for that read instead of
        /// reading it again (the kernel sends a stream's read-ahead as requests on several threads).
        var inflight: [Key: DispatchGroup] = [:]
        /// Per disk, the block right after the last one read.
        var next: [Int: Int] = [:]
        var closed = false
    }

    init(vault: Vault, manifest: RecoveryPointManifest, session: VaultSession, cacheBytes: Int) {
        self.vault = vault
        self.manifest = manifest
        self.session = session
        self.cacheBytes = max(cacheBytes, manifest.blockSize * 4)
        state = Mutex(State())
        let thread = Thread { [weak self] in
            while let reader = self, !reader.stopped.load(ordering: .relaxed) {
                try? reader.session.heartbeat()  // at most once a minute
                Thread.sleep(forTimeInterval: 1)
            }
        }
        thread.name = "coffre-point-reader"
        thread.start()
    }

    deinit { close() }

    /// The disks' names and sizes, in the point's order.
    public var disks: [RecoveryPointManifest.Disk] { manifest.disks }
    public var pointID: String { manifest.id }
    public var readableDisks: [ReadableDisk] { manifest.disks.map { ReadableDisk(name: $0.name, size: $0.size) } }

    /// Reads up to `buffer.count` bytes of disk `disk` from `offset`; returns how many were read
    /// (fewer only at the disk's end). **Blocks.**
    public func read(disk: Int, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard disk >= 0, disk < manifest.disks.count else {
            throw CoffreError(.invalidOption, "Point \(manifest.id) has no disk \(disk)")
        }
        guard !state.withLock({ $0.closed }) else { throw CoffreError(.internalError, "The point reader is closed") }
        let size = manifest.disks[disk].size
        guard offset >= 0, offset < size, !buffer.isEmpty else { return 0 }
        let blockSize = Int64(manifest.blockSize)
        let count = Int(min(Int64(buffer.count), size - offset))
        var done = 0
        while done < count {
            let position = offset + Int64(done)
            let block = Int(position / blockSize)
            let within = Int(position % blockSize)
            let take = min(count - done, blockLength(disk: disk, block: block) - within)
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + take])
            if let bytes = try self.block(disk: disk, block) {
                bytes.withUnsafeBytes { target.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[within..<within + take])) }
            } else {
                target.initializeMemory(as: UInt8.self, repeating: 0)
            }
            done += take
        }
        return count
    }

    /// Reads bytes of a disk into a new array (tests, small reads). **Blocks.**
    public func read(disk: Int, at offset: Int64, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let n = try bytes.withUnsafeMutableBytes { try read(disk: disk, at: offset, into: $0) }
        return Array(bytes[0..<n])
    }

    /// Ends the session: the point may be collected again once expired. Safe to call twice.
    public func close() {
        stopped.store(true, ordering: .relaxed)
        state.withLock { s in
            s.closed = true
            s.blocks = [:]
            s.order = []
            s.frames = [:]
            s.frameOrder = []
            s.pages = [:]
        }
        session.close()
    }

    // MARK: Blocks

    /// A block's bytes, or nil for a zero block. **Blocks.**
    private func block(disk: Int, _ block: Int) throws -> [UInt8]? {
        let key = Key(disk: disk, block: block)
        let sequential = state.withLock { s -> Bool in
            defer { s.next[disk] = block + 1 }
            return s.next[disk] == block
        }
        let pageEntries = manifest.pageEntries
        let page = block / pageEntries
        let entries = try pageIDs(disk: disk, page: page)
        let first = block - page * pageEntries
        guard first < entries.count, !entries[first].isZero else { return nil }
        // A sequential stream reads ahead to the store's read limit, within the page.
        let ahead = sequential ? max(1, vault.store.readCoalescing.limit / manifest.blockSize) : 1
        while true {
            enum Next { case bytes([UInt8]), frame(ChunkID, [UInt8]), wait(DispatchGroup), read([ChunkID], DispatchGroup) }
            let next = state.withLock { s -> Next in
                if let bytes = s.blocks[key] { return .bytes(bytes) }
                if let framed = s.frames.removeValue(forKey: key) {
                    s.frameBytes -= framed.frame.count
                    return .frame(framed.id, framed.frame)
                }
                if let group = s.inflight[key] { return .wait(group) }
                // Claim the window up to the first block already read, framed or under way.
                let group = DispatchGroup()
                group.enter()
                var window: [ChunkID] = []
                for index in first..<min(entries.count, first + ahead) {
                    let k = Key(disk: disk, block: page * pageEntries + index)
                    if index > first, s.blocks[k] != nil || s.frames[k] != nil || s.inflight[k] != nil { break }
                    if !entries[index].isZero { s.inflight[k] = group }
                    window.append(entries[index])
                }
                return .read(window, group)
            }
            switch next {
            case .bytes(let bytes):
                return bytes
            case .frame(let id, let frame):
                return try decodeFrame(frame, id: id, disk: disk, block: block)
            case .wait(let group):
                group.wait()
            case .read(let window, let group):
                defer {
                    state.withLock { s in
                        for index in window.indices { s.inflight.removeValue(forKey: Key(disk: disk, block: block + index)) }
                    }
                    group.leave()
                }
                return try withWorkspace { workspace in
                    try fetch(disk: disk, firstBlock: block, ids: window, workspace: workspace)
                }
            }
        }
    }

    /// Decodes and verifies a frame read ahead, and caches the block.
    private func decodeFrame(_ frame: [UInt8], id: ChunkID, disk: Int, block: Int) throws -> [UInt8] {
        do {
            let bytes = try withWorkspace { try $0.decode(frame, id: id, kind: .chunk) }
            guard bytes.count == blockLength(disk: disk, block: block) else {
                throw CoffreError.chunkDamaged(id.hex, detail: "wrong length")
            }
            remember([(Key(disk: disk, block: block), bytes)])
            return bytes
        } catch {
            throw described(error, disk: disk, block: block)
        }
    }

    private func described(_ error: any Error, disk: Int, block: Int) -> any Error {
        guard var error = error as? CoffreError else { return error }
        error.message += " (point \(manifest.id), disk \(manifest.disks[disk].name), block \(block))"
        return error
    }

    /// Reads the first block of `ids` (blocks `firstBlock…`) and whichever of the next ones come
    /// in the same read: decodes and caches the first, keeps the others' frames for the threads
    /// that will need them, and returns the first. **Blocks.**
    private func fetch(disk: Int, firstBlock: Int, ids: [ChunkID], workspace: CodecWorkspace) throws -> [UInt8] {
        let avoiding = session.avoiding
        let locations = try ids.map { id in id.isZero ? nil : try vault.index.lookup(.chunk, id, avoiding: avoiding) }
        let plan = ReadPlan(locations, coalescing: vault.store.readCoalescing)
        let segmentIndex = Int(plan.segmentOf[0])
        let segment = segmentIndex >= 0 ? plan.segments[segmentIndex] : nil
        // Nil when the first block has no location or its pack went (a repack moved it): then
        // it is read alone, through the index's other copies and repair.
        let read = try segment.flatMap { try vault.store.get($0.pack.key, range: $0.range) }
        func frame(_ item: Int) -> [UInt8] {
            let range = locations[item]!.range
            let start = Int(range.lowerBound - segment!.range.lowerBound)
            return Array(read![start..<start + range.count])
        }
        let bytes: [UInt8]
        do {
            bytes = read == nil
                ? try vault.load(.chunk, ids[0], with: workspace, avoiding: avoiding)
                : try workspace.decode(frame(0), id: ids[0], kind: .chunk)
            guard bytes.count == blockLength(disk: disk, block: firstBlock) else {
                throw CoffreError.chunkDamaged(ids[0].hex, detail: "wrong length")
            }
        } catch {
            throw described(error, disk: disk, block: firstBlock)
        }
        remember([(Key(disk: disk, block: firstBlock), bytes)])
        if read != nil {
            let ahead = ids.indices.dropFirst().filter { plan.segmentOf[$0] == Int32(segmentIndex) }
            keepFrames(ahead.map { (Key(disk: disk, block: firstBlock + $0), ids[$0], frame($0)) })
        }
        return bytes
    }

    private func keepFrames(_ frames: [(Key, ChunkID, [UInt8])]) {
        state.withLock { s in
            guard !s.closed else { return }
            for (key, id, frame) in frames where s.frames[key] == nil && s.blocks[key] == nil {
                s.frames[key] = (id, frame)
                s.frameOrder.append(key)
                s.frameBytes += frame.count
            }
            // Frames are read ahead of their use: at most half the cache's budget.
            while s.frameBytes > cacheBytes / 2, s.frameStart < s.frameOrder.count {
                let old = s.frameOrder[s.frameStart]
                s.frameStart += 1
                s.frameBytes -= s.frames.removeValue(forKey: old)?.frame.count ?? 0
            }
            if s.frameStart > 4096 && s.frameStart * 2 > s.frameOrder.count {
                s.frameOrder.removeFirst(s.frameStart)
                s.frameStart = 0
            }
        }
    }

    /// The length of a disk's block: the block size but for a disk's partial last block.
    private func blockLength(disk: Int, block: Int) -> Int {
        Int(min(Int64(manifest.blockSize), manifest.disks[disk].size - Int64(block) * Int64(manifest.blockSize)))
    }

    private func remember(_ blocks: [(Key, [UInt8])]) {
        state.withLock { s in
            guard !s.closed else { return }
            for (key, bytes) in blocks where s.blocks[key] == nil {
                s.blocks[key] = bytes
                s.order.append(key)
                s.bytes += bytes.count
            }
            while s.bytes > cacheBytes, s.orderStart < s.order.count {
                let old = s.order[s.orderStart]
                s.orderStart += 1
                s.bytes -= s.blocks.removeValue(forKey: old)?.count ?? 0
            }
            if s.orderStart > 4096 && s.orderStart * 2 > s.order.count {
                s.order.removeFirst(s.orderStart)
                s.orderStart = 0
            }
        }
    }

    // MARK: Pages

    /// The ids of one index page of a disk (zero ids past a disk's last page). **Blocks.**
    private func pageIDs(disk: Int, page: Int) throws -> [ChunkID] {
        let key = Key(disk: disk, block: page)
        if let cached = state.withLock({ $0.pages[key] }) { return cached }
        let root = try rootIDs(disk: disk)
        guard page < root.count else { return [] }
        let ids = root[page].isZero ? [] : try withWorkspace { try vault.loadIDs(root[page], with: $0, avoiding: session.avoiding) }
        state.withLock { s in
            guard !s.closed, s.pages[key] == nil else { return }
            s.pages[key] = ids
            s.pageOrder.append(key)
            if s.pageOrder.count > Self.cachedPages { s.pages.removeValue(forKey: s.pageOrder.removeFirst()) }
        }
        return ids
    }

    /// A disk's root (its pages' ids), kept for the reader's life (32 bytes per 64 MiB of disk).
    private func rootIDs(disk: Int) throws -> [ChunkID] {
        let key = Key(disk: disk, block: -1)
        if let cached = state.withLock({ $0.pages[key] }) { return cached }
        let ids = try withWorkspace { try vault.loadIDs(manifest.disks[disk].rootID, with: $0, avoiding: session.avoiding) }
        state.withLock { s in if !s.closed { s.pages[key] = ids } }
        return ids
    }

    private func withWorkspace<R>(_ body: (CodecWorkspace) throws -> R) throws -> R {
        let pooled = workspaces.withLock { $0.popLast() } ?? PooledWorkspace(CodecWorkspace(codec: vault.codec))
        defer { workspaces.withLock { $0.append(pooled) } }
        return try body(pooled.workspace)
    }
}

/// A codec workspace in the reader's pool: taken by one thread at a time, so never shared.
private final class PooledWorkspace: @unchecked Sendable {
    let workspace: CodecWorkspace
    init(_ workspace: CodecWorkspace) { self.workspace = workspace }
}
