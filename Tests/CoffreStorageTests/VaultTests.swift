import CoffreCore
@testable import CoffreStorage
import CoffreTesting
import Foundation
import Testing

@Suite struct VaultTests {
    @Test func holesAndZeroBlocksAreNeverStored() async throws {
        let t = try TestVault()
        var g = SeededGenerator(seed: 5)
        var bytes = [UInt8](repeating: 0, count: 64 << 10 * 4)
        bytes.replaceSubrange(0..<1000, with: g.bytes(1000))
        // Allocated but zero (block 1), data in an extent the device reports (block 3), and a
        // region it reports as a hole (block 2: must not even be read).
        let device = MemoryBlockDevice(name: "d", bytes: bytes, allocated: [0..<(32 << 10), (48 << 10)..<(256 << 10)])
        let point = try await t.vault.backup(item: "vm", disks: [device])
        #expect(try t.storedChunks == 1)
        #expect(point.disks[0].zeroBlocks == point.disks[0].blocks - 1)
        #expect(point.stats.bytesRead < Int64(bytes.count))
        #expect(try await t.restore(point.id)["d"] == bytes)
    }

    @Test func unchangedBlocksAreNotRewritten() async throws {
        let t = try TestVault()
        var g = SeededGenerator(seed: 6)
        var disk = g.bytes(40 * (16 << 10))
        let first = try await t.backup("vm", ["d": disk])
        disk[5 * (16 << 10) + 3] ^= 1
        let second = try await t.backup("vm", ["d": disk])
        #expect(first.stats.blocksAdded == 40)
        #expect(second.stats.blocksAdded == 1)
        #expect(second.stats.blocksChanged == 1)
        #expect(second.base == first.id)
    }

    @Test func indexPagesAreSharedBetweenPoints() async throws {
        // 16 KiB blocks → 4096 entries a page → a page covers 64 MiB; use a 200 MiB sparse disk
        // with data in the first and last page: an incremental that changes the last page only
        // stores one new page and a new root.
        let t = try TestVault()
        var g = SeededGenerator(seed: 8)
        let size = 200 << 20
        var bytes = [UInt8](repeating: 0, count: size)
        bytes.replaceSubrange(0..<4096, with: g.bytes(4096))
        bytes.replaceSubrange((size - 4096)..<size, with: g.bytes(4096))
        let allocated: [Range<Int64>] = [0..<4096, Int64(size - 4096)..<Int64(size)]
        _ = try await t.vault.backup(item: "vm", disks: [MemoryBlockDevice(name: "d", bytes: bytes, allocated: allocated)])
        bytes[size - 1] ^= 1
        let second = try await t.vault.backup(item: "vm", disks: [MemoryBlockDevice(name: "d", bytes: bytes, allocated: allocated)])
        #expect(second.stats.indexObjectsAdded == 2)
        #expect(try await t.restore(second.id)["d"] == bytes)
    }

    @Test func collectionKeepsWhatARunningBackupReliesOn() async throws {
        // A backup session protecting its base point: the base expires and a collection runs
        // while the session is open; the base's objects must survive until the session ends.
        let t = try TestVault()
        var g = SeededGenerator(seed: 11)
        let disk = g.bytes(8 * (16 << 10))
        let base = try await t.backup("vm", ["d": disk])
        let session = try t.vault.store.beginSession(purpose: "backup", protecting: base.disks.map(\.rootID))
        try t.vault.expire(base.id)
        try t.vault.collectGarbage()
        #expect(try t.storedChunks == 8)
        session.close()
        try t.vault.collectGarbage()
        #expect(try t.storedChunks == 0)
    }

    @Test func collectionKeepsObjectsARunningWriterRefreshed() async throws {
        let t = try TestVault()
        var g = SeededGenerator(seed: 12)
        let disk = g.bytes(4 * (16 << 10))
        let old = try await t.backup("vm", ["d": disk])
        let id = ChunkCodec(keys: nil, compressionLevel: 1).id(of: Array(disk[0..<(16 << 10)]))
        try t.vault.expire(old.id)
        // Make every object older than the session that is about to start.
        for kind in [ObjectKind.chunk, .index] {
            try t.vault.store.forEachObject(kind) { id, _ in
                var times = [timespec(tv_sec: 1_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000, tv_nsec: 0)]
                utimensat(AT_FDCWD, (t.vault.store as! LocalChunkStore).path(kind, id), &times, 0)
            }
        }
        let session = try t.vault.store.beginSession(purpose: "backup", protecting: [])
        #expect(try t.vault.store.contains(.chunk, id, refresh: true))   // reused by the writer
        try t.vault.collectGarbage()
        #expect(try t.vault.store.contains(.chunk, id, refresh: false))
        #expect(try t.storedChunks == 1)
        session.close()
        try t.vault.collectGarbage()
        #expect(try t.storedChunks == 0)
    }

    @Test func deadSessionsAreCleanedUp() async throws {
        let t = try TestVault()
        // A lease nobody holds and a staging folder: what a killed backup leaves.
        let root = t.vault.path
        _ = FileManager.default.createFile(atPath: root + "/leases/backup-1-dead", contents: Data("{}".utf8))
        try FileManager.default.createDirectory(atPath: root + "/tmp/backup-1-dead", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: root + "/tmp/backup-1-dead/1-" + String(repeating: "ab", count: 32), contents: Data([1]))
        let report = try t.vault.collectGarbage()
        #expect(report.staleSessionsRemoved == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/tmp").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/leases").isEmpty)
    }

    @Test func wrongKeyAndMissingKeyAreRefused() throws {
        let t = try TestVault(encrypted: true)
        let other = t.folder + "/other.key"
        try String(repeating: "ab", count: 32).write(toFile: other, atomically: true, encoding: .utf8)
        #expect(throws: CoffreError.wrongEncryptionKey()) { try Vault.open(at: t.vault.path, encryptionKeyFile: other) }
        #expect(throws: CoffreError.self) { try Vault.open(at: t.vault.path, encryptionKeyFile: t.folder + "/none") }
        _ = try Vault.open(at: t.vault.path)   // the remembered key file
        let mode = try FileManager.default.attributesOfItem(atPath: t.folder + "/key")[.posixPermissions] as! Int
        #expect(mode == 0o600)
    }

    @Test func corruptedChunkFailsRestoreAndIsReported() async throws {
        let t = try TestVault()
        var g = SeededGenerator(seed: 13)
        var disk = g.bytes(4 * (16 << 10))
        let first = try await t.backup("vm", ["d": disk])
        disk.replaceSubrange(0..<(16 << 10), with: g.bytes(16 << 10))
        let second = try await t.backup("vm", ["d": disk])
        // Damage block 1 of the first point (replaced in the second).
        let id = ChunkCodec(keys: nil, compressionLevel: 1).id(of: Array(try await t.restore(first.id)["d"]![0..<(16 << 10)]))
        let path = (t.vault.store as! LocalChunkStore).path(.chunk, id)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count / 2] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let report = try t.vault.verify()
        #expect(!report.clean)
        #expect(report.damagedChunks == [id.hex])
        #expect(report.brokenPoints == [first.id])
        await #expect(throws: CoffreError.self) { try await t.vault.restore(point: first.id, to: t.folder + "/r") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: t.folder + "/r").isEmpty)
        #expect(try await t.restore(second.id)["d"] == disk)
    }

    @Test func damagedManifestStopsCollectionButNotBackups() async throws {
        let t = try TestVault()
        var g = SeededGenerator(seed: 14)
        var disk = g.bytes(4 * (16 << 10))
        let first = try await t.backup("vm", ["d": disk])
        let path = t.vault.path + "/points/" + first.id
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 1] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        #expect(throws: CoffreError.self) { try t.vault.collectGarbage() }
        #expect(try t.storedChunks == 4)
        disk[0] ^= 1
        let second = try await t.backup("vm", ["d": disk])
        #expect(second.base == nil)
        #expect(try await t.restore(second.id)["d"] == disk)
        #expect(try t.vault.verify().brokenPoints == [first.id])
    }
}
