import CoffreCore
@testable import CoffreStorage
import CoffreTesting
import Foundation
import Synchronization
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
        let session = try VaultSession(vault: t.vault, purpose: "backup", protecting: base.disks.map(\.rootID))
        try t.vault.expire(base.id)
        let kept = try t.vault.collectGarbage()
        #expect(kept.packsCondemned == 0)
        #expect(try t.storedChunks == 8)
        session.close()
        let freed = try t.vault.collectGarbage()
        #expect(freed.packsDeleted == 1 && freed.removedChunks == 8)
        #expect(try t.storedChunks == 0)
        #expect(try t.vault.verify().clean)
    }

    @Test func condemnedPacksWaitForTheSessionsRunningThenAndAreNeverReused() async throws {
        let t = try TestVault()
        var g = SeededGenerator(seed: 12)
        let disk = g.bytes(4 * (16 << 10))
        let old = try await t.backup("vm", ["d": disk])
        let id = ChunkCodec(keys: nil, compressionLevel: 1).id(of: Array(disk[0..<(16 << 10)]))
        try t.vault.expire(old.id)
        // A session running when the packs are condemned may have looked them up already.
        let early = try VaultSession(vault: t.vault, purpose: "backup", protecting: [])
        #expect(try early.contains(.chunk, id))
        let first = try t.vault.collectGarbage()
        #expect(first.packsCondemned == 1 && first.packsDeleted == 0 && first.waitingForSessions == 1)
        #expect(try t.storedChunks == 4)
        // A session that starts after the condemnation never reuses the condemned pack.
        let late = try VaultSession(vault: t.vault, purpose: "backup", protecting: [])
        #expect(try !late.contains(.chunk, id))
        #expect(try t.vault.collectGarbage().packsDeleted == 0)   // still waiting for `early`
        early.close()
        let second = try t.vault.collectGarbage()
        #expect(second.packsDeleted == 1)
        #expect(try t.storedChunks == 0)
        late.close()
    }

    @Test func aCondemnedPackThatABackupRunningThenReusedIsRecovered() async throws {
        // The backup looks the chunks up before the condemnation and commits after it: the
        // deletion phase finds them referenced and keeps the pack.
        let t = try TestVault()
        var g = SeededGenerator(seed: 15)
        let block = 16 << 10
        let disk = g.bytes(4 * block)
        let old = try await t.backup("vm", ["d": disk])
        try t.vault.expire(old.id)
        let device = GatedDevice(name: "d", bytes: disk, gate: Int64(3 * block))
        let vault = t.vault
        let backup = Task { try await vault.backup(BackupRequest(item: "vm", disks: [device], base: nil, time: Date())) }
        while !device.reached.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(5)) }
        let condemned = try t.vault.collectGarbage()
        #expect(condemned.packsCondemned == 1 && condemned.waitingForSessions == 1)
        device.open.store(true, ordering: .releasing)
        let point = try await backup.value
        #expect(point.stats.blocksAdded == 0)   // blocks 0–2 and 3 found in the old pack
        let finished = try t.vault.collectGarbage()
        #expect(finished.packsRecovered == 1 && finished.packsDeleted == 0)
        #expect(try await t.restore(point.id)["d"] == disk)
        #expect(try t.vault.verify().clean)
    }

    @Test func deadSessionsAreCleanedUp() async throws {
        let t = try TestVault()
        // A session record whose process is gone: what a killed backup leaves.
        let dead = SessionRecord(purpose: "backup", owner: "\(ProcessInfo.processInfo.hostName):999999999:1",
                                 started: Date(), heartbeat: Date(), roots: [])
        try t.vault.store.put("sessions/backup-dead", Array(try JSONEncoder().encode(dead)), mode: .create)
        let report = try t.vault.collectGarbage()
        #expect(report.staleSessionsRemoved == 1)
        #expect(try t.vault.store.list(prefix: "sessions/").isEmpty)
    }

    @Test func wrongKeyAndMissingKeyAreRefused() throws {
        let t = try TestVault(encrypted: true)
        let other = t.folder + "/other.key"
        try String(repeating: "ab", count: 32).write(toFile: other, atomically: true, encoding: .utf8)
        #expect(throws: CoffreError.wrongEncryptionKey()) { try t.reopen(encryptionKeyFile: other) }
        #expect(throws: CoffreError.self) { try t.reopen(encryptionKeyFile: t.folder + "/none") }
        _ = try t.reopen()   // the remembered key file
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
        let location = try #require(try t.vault.index.lookup(.chunk, id))
        try t.damage(location.pack.key) { _ in Int(location.offset) + Int(location.length) / 2 }

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
        try t.damage("points/" + first.id, mask: 1) { $0 - 1 }

        #expect(throws: CoffreError.self) { try t.vault.collectGarbage() }
        #expect(try t.storedChunks == 4)
        disk[0] ^= 1
        let second = try await t.backup("vm", ["d": disk])
        #expect(second.base == nil)
        #expect(try await t.restore(second.id)["d"] == disk)
        #expect(try t.vault.verify().brokenPoints == [first.id])
    }
}

/// A disk whose read at `gate` waits until `open` is set (and says it got there).
final class GatedDevice: BlockDevice, @unchecked Sendable {
    let name: String
    let bytes: [UInt8]
    let gate: Int64
    let reached = Atomic<Bool>(false)
    let open = Atomic<Bool>(false)

    init(name: String, bytes: [UInt8], gate: Int64) {
        self.name = name
        self.bytes = bytes
        self.gate = gate
    }

    var size: Int64 { Int64(bytes.count) }
    func dataExtents(in range: Range<Int64>) throws -> [Range<Int64>] { [range] }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws {
        if offset == gate {
            reached.store(true, ordering: .releasing)
            while !open.load(ordering: .acquiring) { usleep(2000) }
        }
        bytes.withUnsafeBytes { raw in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[Int(offset)..<(Int(offset) + buffer.count)]))
        }
    }
}
