import CoffreCore
@testable import CoffreStorage
import CoffreTesting
import Foundation
import Synchronization
import Testing

/// Packs, the chunk index and its repair, format-1 vaults, and collection racing backups.
@Suite struct StorageV2Tests {
    static let block = 16 << 10

    @Test func aBackupWritesFewPacksThatDescribeThemselves() async throws {
        let t = try TestVault(blockSize: Self.block)
        var g = SeededGenerator(seed: 21)
        let point = try await t.backup("vm", ["d": g.bytes(64 * Self.block)])
        let packs = try t.vault.packSizes()
        #expect(packs.count == 1, "a small backup makes one pack, got \(packs.count)")
        // The pack's own table lists every object the index has: 64 chunks, a page and a root.
        let workspace = CodecWorkspace(codec: t.vault.codec)
        let (pack, size) = try #require(packs.first)
        let table = try PackFormat.readTable(t.vault.store, pack: pack, size: size, workspace: workspace)
        #expect(table.filter { $0.kind == .chunk }.count == 64)
        #expect(table.filter { $0.kind == .index }.count == 2)
        #expect(t.vault.index.count == table.count)
        #expect(try await t.restore(point.id)["d"] != nil)
    }

    @Test(arguments: [false, true])
    func aDeletedIndexIsRebuiltFromThePacks(encrypted: Bool) async throws {
        let t = try TestVault(blockSize: Self.block, encrypted: encrypted)
        var g = SeededGenerator(seed: 22)
        var disk = g.bytes(40 * Self.block)
        var points: [(String, [UInt8])] = []
        for round in 0..<3 {
            disk.replaceSubrange((round * Self.block)..<((round + 1) * Self.block), with: g.bytes(Self.block))
            points.append((try await t.backup("vm", ["d": disk]).id, disk))
        }
        let segments = try t.vault.store.list(prefix: "index/")
        #expect(!segments.isEmpty)
        try t.vault.store.delete(segments.map(\.key))

        // A new process finds no index: its first read rebuilds it from the packs.
        let reopened = try t.reopen()
        for (id, bytes) in points {
            let target = t.folder + "/r-\(id)"
            let files = try await reopened.restore(point: id, to: target)
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: files[0]))) == bytes)
        }
        #expect(try !reopened.store.list(prefix: "index/").isEmpty)

        // And `vault repair` rebuilds it on demand, every object indexed once.
        try reopened.store.delete(try reopened.store.list(prefix: "index/").map(\.key))
        let report = try reopened.repairIndex()
        #expect(report.unreadablePacks.isEmpty)
        #expect(report.records == reopened.index.count)
        #expect(try reopened.verify().clean)
        #expect(try reopened.stats().storedChunks == distinctNonZeroBlocks(points.map(\.1), blockSize: Self.block))
    }

    @Test func aDamagedSegmentIsRebuiltAutomatically() async throws {
        let t = try TestVault(blockSize: Self.block)
        var g = SeededGenerator(seed: 23)
        let disk = g.bytes(10 * Self.block)
        let point = try await t.backup("vm", ["d": disk])
        let segment = try #require(try t.vault.store.list(prefix: "index/").first)
        try t.damage(segment.key, mask: 1) { $0 / 2 }
        let reopened = try t.reopen()
        let files = try await reopened.restore(point: point.id, to: t.folder + "/r")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: files[0]))) == disk)
        // The segment was written again from the packs (the same records: the same name), intact.
        let rewritten = try #require(try reopened.store.get(segment.key))
        #expect(throws: Never.self) {
            try ChunkIndex.decodeSegment(rewritten, key: segment.key, workspace: CodecWorkspace(codec: reopened.codec))
        }
    }

    @Test(arguments: [false, true])
    func aFormatOneVaultIsUpgradedAndEveryPointRestores(encrypted: Bool) async throws {
        let folder = NSTemporaryDirectory() + "coffre-v1-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/vault"
        let old = try FormatOneVault(path: path, blockSize: Self.block, keyFile: encrypted ? folder + "/key" : nil)
        var g = SeededGenerator(seed: 24)
        var disk = g.bytes(1100 * Self.block)   // more objects than one upgrade checkpoint
        disk.replaceSubrange(0..<(3 * Self.block), with: [UInt8](repeating: 0, count: 3 * Self.block))
        var points: [(String, [UInt8])] = []
        for round in 0..<2 {
            disk.replaceSubrange((10 + round) * Self.block..<(11 + round) * Self.block, with: g.bytes(Self.block))
            let other = g.bytes(5 * Self.block + 100)
            let id = try old.backup(item: "vm", disks: [("a", disk), ("b", other)], time: Date(timeIntervalSince1970: Double(1_800_000_000 + round)))
            points.append((id, disk + other))
        }

        // Refused until upgraded, with the command to run.
        #expect(throws: CoffreError.vaultUpgradeRequired(path)) { try Vault.open(at: path) }

        // Killed after its first checkpoint: still format 1, and the next run goes on from there.
        struct Killed: Error {}
        #expect(throws: Killed.self) { try Vault.upgrade(at: path) { _, _ in throw Killed() } }
        #expect(throws: CoffreError.vaultUpgradeRequired(path)) { try Vault.open(at: path) }
        let report = try Vault.upgrade(at: path)
        #expect(report.skipped >= 1024, "the objects of the first run's checkpoint are not copied again")
        #expect(report.damaged.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: path + "/chunks"))
        #expect(try Vault.upgrade(at: path).alreadyUpgraded)

        let vault = try Vault.open(at: path)
        for (id, bytes) in points {
            let files = try await vault.restore(point: id, to: folder + "/r-\(id)")
            let restored = try files.map { Array(try Data(contentsOf: URL(fileURLWithPath: $0))) }.reduce([], +)
            #expect(restored == bytes)
        }
        #expect(try vault.verify().clean)
        // What the killed run packed and the second run did not name is garbage: collected.
        try vault.collectGarbage(unusedLimit: 0)
        #expect(try vault.stats().unusedBytes == 0)
        #expect(try vault.stats().storedChunks == distinctNonZeroBlocks(points.map(\.1), blockSize: Self.block))
        // The upgraded vault goes on: an incremental backup and its restore.
        disk[0] = 1
        let next = try await vault.backup(item: "vm", disks: [MemoryBlockDevice(name: "a", bytes: disk)])
        let files = try await vault.restore(point: next.id, to: folder + "/next")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: files[0]))) == disk)
    }

    @Test func backupsRunWhileCollectionAndRepackingLoop() async throws {
        let t = try TestVault(blockSize: Self.block)
        let vault = t.vault
        let stop = Flag()
        // Blocking work on a thread of its own: a loop that waits for the backups must never
        // hold one of the two cooperative threads they need (that hung a whole test run).
        let collections = BlockingLoop {
            var runs = 0
            while !stop.isSet || runs < 3 {
                try vault.collectGarbage(unusedLimit: runs % 2 == 0 ? 0 : Vault.maxUnusedShare)
                runs += 1
            }
            return runs
        }
        var kept: [(String, [UInt8])] = []
        try await withThrowingTaskGroup(of: [(String, [UInt8])].self) { group in
            for item in 0..<3 {
                group.addTask {
                    var g = SeededGenerator(seed: UInt64(30 + item))
                    let pool = (0..<6).map { _ in g.bytes(Self.block) }   // blocks shared between items
                    var disk = (0..<24).flatMap { _ in pool[Int.random(in: 0..<6, using: &g)] }
                    var points: [(String, [UInt8])] = []
                    for round in 0..<6 {
                        for _ in 0..<4 {
                            let at = Int.random(in: 0..<24, using: &g) * Self.block
                            disk.replaceSubrange(at..<(at + Self.block), with: Bool.random(using: &g) ? pool[round % 6] : g.bytes(Self.block))
                        }
                        let point = try await vault.backup(item: "vm\(item)", disks: [MemoryBlockDevice(name: "d", bytes: disk)])
                        points.append((point.id, disk))
                        // Keep the last two points of each item: the others expire and become garbage.
                        if points.count > 2 { try vault.expire(points.removeFirst().0) }
                    }
                    return points
                }
            }
            for try await points in group { kept += points }
        }
        stop.set()
        let runs = try await collections.value()
        #expect(runs >= 3)
        try vault.collectGarbage(unusedLimit: 0)
        for (id, bytes) in kept {
            #expect(try await t.restore(id)["d"] == bytes, "point \(id)")
        }
        #expect(try vault.verify().clean)
        #expect(try vault.stats().storedChunks == distinctNonZeroBlocks(kept.map(\.1), blockSize: Self.block))
    }
}

/// Runs a blocking body on a thread of its own; its result is awaited without holding a
/// cooperative thread meanwhile.
final class BlockingLoop<T: Sendable>: Sendable {
    private let result = Mutex<Result<T, any Error>?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () throws -> T) {
        Thread.detachNewThread { [self] in
            let outcome = Result { try body() }
            result.withLock { $0 = outcome }
            done.signal()
        }
    }

    func value() async throws -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread { [self] in
                done.wait()
                done.signal()
                continuation.resume()
            }
        }
        return try result.withLock { $0! }.get()
    }
}

/// A flag set once, read from any thread.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}
