import CoffreCore
@testable import CoffreStorage
import Foundation

/// Writes a vault exactly as format 1 (the release before packs) laid it out: one file per
/// object under `chunks/<2 hex>/<id>` and `indexes/<2 hex>/<id>`, manifests under `points/`,
/// `leases/`, `tmp/`, `coffre-vault.json` with version 1. The frames are the codec's, which
/// format 2 keeps.
struct FormatOneVault {
    let path: String
    let blockSize: Int
    let codec: ChunkCodec
    let workspace: CodecWorkspace

    init(path: String, blockSize: Int, keyFile: String? = nil) throws {
        self.path = path
        self.blockSize = blockSize
        var configuration = VaultConfiguration(id: UUID().uuidString.lowercased(), createdAt: Date(),
                                               blockSize: blockSize, compression: .init(level: 1))
        configuration.version = 1
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        var keys: VaultKeys?
        if let keyFile {
            let derived = VaultKeys(master: try KeyFile.generate(keyFile), vaultID: configuration.id)
            configuration.encryption = .init(keyCheck: derived.checkValue, keyFile: keyFile)
            keys = derived
        }
        codec = ChunkCodec(keys: keys, compressionLevel: 1)
        workspace = CodecWorkspace(codec: codec)
        let fm = FileManager.default
        for kind in ["chunks", "indexes"] {
            for shard in 0..<256 {
                try fm.createDirectory(atPath: "\(path)/\(kind)/\(Vault.formatOneShard(shard))", withIntermediateDirectories: true)
            }
        }
        for folder in ["points", "leases", "tmp"] { try fm.createDirectory(atPath: "\(path)/\(folder)", withIntermediateDirectories: true) }
        try configuration.encoded().write(to: "\(path)/\(VaultConfiguration.fileName)")
    }

    private func store(_ kind: ObjectKind, _ plain: [UInt8]) throws -> ChunkID {
        let id = codec.id(of: plain)
        let file = "\(path)/\(kind.formatOneFolder)/\(id.hex.prefix(2))/\(id.hex)"
        if !FileManager.default.fileExists(atPath: file) {
            try workspace.encode(plain, id: id, kind: kind).write(to: file)
        }
        return id
    }

    /// Backs disks up the way format 1 did (no base, every block hashed); returns the point id.
    func backup(item: String, disks: [(name: String, bytes: [UInt8])], time: Date) throws -> String {
        let entries = DiskIndex.pageEntries(blockSize: blockSize)
        var records: [RecoveryPointManifest.Disk] = []
        for disk in disks {
            var pages: [ChunkID] = []
            var blocks = 0, zeros = 0
            var offset = 0
            while offset < disk.bytes.count {
                var ids: [ChunkID] = []
                while ids.count < entries, offset < disk.bytes.count {
                    let block = Array(disk.bytes[offset..<min(disk.bytes.count, offset + blockSize)])
                    blocks += 1
                    if block.allSatisfy({ $0 == 0 }) {
                        ids.append(.zero)
                        zeros += 1
                    } else {
                        ids.append(try store(.chunk, block))
                    }
                    offset += blockSize
                }
                pages.append(try store(.index, DiskIndex.encode(ids)))
            }
            let root = try store(.index, DiskIndex.encode(pages))
            records.append(.init(name: disk.name, size: Int64(disk.bytes.count), root: root.hex, blocks: blocks, zeroBlocks: zeros))
        }
        let manifest = RecoveryPointManifest(
            id: RecoveryPointManifest.makeID(at: time), item: item, time: time, blockSize: blockSize,
            pageEntries: entries, base: nil, disks: records,
            stats: .init(blocksAdded: 0, blocksChanged: 0, bytesRead: 0, bytesWritten: 0, indexObjectsAdded: 0, seconds: 0))
        try manifest.encoded(with: workspace).write(to: "\(path)/points/\(manifest.id)")
        return manifest.id
    }
}

extension Array where Element == UInt8 {
    func write(to path: String) throws {
        try Data(self).write(to: URL(fileURLWithPath: path))
    }
}
