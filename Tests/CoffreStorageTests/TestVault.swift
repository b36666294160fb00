import CoffreCore
import CoffreS3
@testable import CoffreStorage
import CoffreTesting
import Foundation
import Testing

/// Where a test's vault keeps its bytes. `COFFRE_TEST_STORE=s3` runs every test that does not
/// name one on the real gateway of `scripts/s3-harness` (scripts/test runs this target twice).
enum TestStore: String {
    case local, memory, s3

    static let standard = TestStore(rawValue: ProcessInfo.processInfo.environment["COFFRE_TEST_STORE"] ?? "local") ?? .local

    /// A new, empty store (a folder under `folder`, a new prefix of the tests' bucket).
    func make(in folder: String) throws -> any ChunkStore {
        switch self {
        case .local:
            try LocalChunkStore.createLayout(at: folder + "/vault")
            return LocalChunkStore(root: folder + "/vault")
        case .memory:
            return MemoryChunkStore()
        case .s3:
            let location = S3Location(endpoint: S3TestGateway.endpoint, bucket: S3TestGateway.bucket,
                                      prefix: S3TestGateway.newPrefix("vault"))
            let credentials = S3Credentials(accessKeyID: S3TestGateway.accessKey, secretAccessKey: S3TestGateway.secretKey)
            _ = Self.bucket
            return try S3ChunkStore.open(location, credentials: credentials)
        }
    }

    private static let bucket: Void? = try? S3ChunkStore.createBucket(
        S3Location(endpoint: S3TestGateway.endpoint, bucket: S3TestGateway.bucket),
        credentials: S3Credentials(accessKeyID: S3TestGateway.accessKey, secretAccessKey: S3TestGateway.secretKey))
}

/// A vault in a fresh temporary folder (or store), removed when the test ends.
final class TestVault {
    let folder: String
    let store: any ChunkStore
    let vault: Vault

    init(blockSize: Int = 16 << 10, encrypted: Bool = false, store kind: TestStore = .standard) throws {
        folder = NSTemporaryDirectory() + "coffre-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        store = try kind.make(in: folder)
        try FileManager.default.createDirectory(atPath: folder + "/tmp", withIntermediateDirectories: true)
        vault = try Vault.create(in: store, cacheDirectory: folder + "/tmp", blockSize: blockSize,
                                 encryptionKeyFile: encrypted ? folder + "/key" : nil)
    }

    /// The same vault opened again, as another process would.
    func reopen(encryptionKeyFile: String? = nil) throws -> Vault {
        try Vault.open(store, cacheDirectory: folder + "/tmp", encryptionKeyFile: encryptionKeyFile)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: folder)
        // A gateway's objects live in its RAM: leave nothing behind.
        if store is S3ChunkStore, let keys = try? store.list(prefix: "").map(\.key) { try? store.delete(keys) }
    }

    /// Flips the bits of `mask` in the byte at `offset(size)` of a stored object, through the store
    /// (a bad disk or a tampering hand), whatever the store is.
    func damage(_ key: String, mask: UInt8 = 0xFF, at offset: (Int) -> Int) throws {
        var bytes = try #require(try store.get(key))
        bytes[offset(bytes.count)] ^= mask
        try store.put(key, bytes, mode: .replace)
    }

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
