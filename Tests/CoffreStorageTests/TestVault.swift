import CoffreCore
@testable import CoffreStorage
import CoffreTesting
import Foundation

/// A vault in a fresh temporary folder, removed when the test ends.
final class TestVault {
    let folder: String
    let vault: Vault

    /// - Parameter memory: the vault on a `MemoryChunkStore` instead of a folder.
    init(blockSize: Int = 16 << 10, encrypted: Bool = false, memory: Bool = false) throws {
        folder = NSTemporaryDirectory() + "coffre-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        if memory {
            vault = try Vault.create(in: MemoryChunkStore(), cacheDirectory: folder, blockSize: blockSize,
                                     encryptionKeyFile: encrypted ? folder + "/key" : nil)
        } else {
            vault = try Vault.create(at: folder + "/vault", blockSize: blockSize,
                                     encryptionKeyFile: encrypted ? folder + "/key" : nil)
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: folder) }

    /// Backs up in-memory disks; returns the point.
    func backup(_ item: String, _ disks: [String: [UInt8]]) async throws -> RecoveryPointManifest {
        let devices = disks.keys.sorted().map { MemoryBlockDevice(name: $0, bytes: disks[$0]!) }
        return try await vault.backup(item: item, disks: devices)
    }

    /// Restores a point and returns each disk's bytes by name.
    func restore(_ point: String) async throws -> [String: [UInt8]] {
        let target = folder + "/restore-\(UUID().uuidString)"
        let paths = try await vault.restore(point: point, to: target)
        var disks: [String: [UInt8]] = [:]
        for path in paths {
            disks[(path as NSString).lastPathComponent] = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        try FileManager.default.removeItem(atPath: target)
        return disks
    }

    var storedChunks: Int { get throws { try vault.stats().storedChunks } }

    /// A first point of `item`: one disk `name` of `blocks` seeded random blocks. Returns the
    /// point, the disk's bytes and the generator, for the test to go on with.
    func firstPoint(
        _ item: String = "vm", disk name: String = "d", blocks: Int, blockSize: Int, seed: UInt64
    ) async throws -> (point: RecoveryPointManifest, bytes: [UInt8], generator: SeededGenerator) {
        var generator = SeededGenerator(seed: seed)
        let bytes = generator.bytes(blocks * blockSize)
        return (try await backup(item, [name: bytes]), bytes, generator)
    }
}

/// Splits disks into blocks and counts the distinct non-zero ones (what the vault must store).
func distinctNonZeroBlocks(_ disks: [[UInt8]], blockSize: Int) -> Int {
    var seen = Set<[UInt8]>()
    for disk in disks {
        var offset = 0
        while offset < disk.count {
            let block = Array(disk[offset..<min(disk.count, offset + blockSize)])
            if block.contains(where: { $0 != 0 }) { seen.insert(block) }
            offset += blockSize
        }
    }
    return seen.count
}
