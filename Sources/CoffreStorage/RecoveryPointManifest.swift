public import CoffreCore
import CoffreSystem
public import Foundation

/// A recovery point as stored in the vault: which item, when, and one index root per disk.
/// Stored encoded (and encrypted in an encrypted vault) under `points/<id>`.
public struct RecoveryPointManifest: Codable, Sendable, Equatable {
    public var format = 1
    public var id: String
    public var item: String
    public var time: Date
    public var blockSize: Int
    /// Index entries per index page (each page covers `pageEntries * blockSize` bytes).
    public var pageEntries: Int
    /// The point this one was compared with, if any.
    public var base: String?
    public var disks: [Disk]
    public var stats: Stats

    public struct Disk: Codable, Sendable, Equatable {
        public var name: String
        public var size: Int64
        /// Id of the disk's index root: the list of its index pages' ids.
        public var root: String
        public var blocks: Int
        public var zeroBlocks: Int
        /// Read through its changed ranges only, the rest taken from the base point (nil in
        /// manifests written before it was recorded per disk).
        public var readChangesOnly: Bool?
        /// Why a disk that offered its changed ranges was read in full anyway.
        public var fullReadReason: String?
        public var rootID: ChunkID { ChunkID(hex: root)! }
    }

    public struct Stats: Codable, Sendable, Equatable {
        /// Data chunks this backup stored that the vault did not hold.
        public var blocksAdded: Int
        /// Blocks whose content differed from the previous point's.
        public var blocksChanged: Int
        public var bytesRead: Int64
        /// Stored (compressed, encrypted) bytes written, data and index.
        public var bytesWritten: Int64
        public var indexObjectsAdded: Int
        public var seconds: Double
        /// Disks read through their changed ranges only (nil in manifests written before
        /// changed-block tracking existed).
        public var changedOnlyDisks: Int?
    }

    public var logicalBytes: Int64 { disks.reduce(0) { $0 + $1.size } }
}

extension RecoveryPointManifest {
    /// Time-sortable unique id, e.g. `rp-20261122T101530-3f9a1c2b`.
    static func makeID(at time: Date) -> String {
        "rp-\(compactTimestamp(time))-\(randomHex(4))"
    }

    /// Encodes as `id · frame`, the id being the digest of the JSON plaintext.
    func encoded(with workspace: CodecWorkspace) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = [.sortedKeys]
        return workspace.seal(Array(try encoder.encode(self)))
    }

    static func decode(_ bytes: [UInt8], name: String, with workspace: CodecWorkspace) throws -> RecoveryPointManifest {
        let json = try workspace.unseal(bytes, what: "manifest \(name)")
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        guard let manifest = try? decoder.decode(RecoveryPointManifest.self, from: Data(json)), manifest.id == name else {
            throw CoffreError.chunkDamaged("manifest \(name)", detail: "unreadable manifest")
        }
        return manifest
    }
}

extension CodecWorkspace {
    /// A small object kept under a key of its own (a manifest, a catalog copy): `id · frame`,
    /// the id being the digest of the plaintext, so that reading it back verifies it.
    func seal(_ plain: [UInt8]) -> [UInt8] {
        let id = codec.id(of: plain)
        return id.bytes + encode(plain, id: id, kind: .manifest)
    }

    /// The plaintext of `seal`'s output, verified.
    /// - Throws: `ChunkDamaged` naming `what` when it is truncated or does not verify.
    func unseal(_ bytes: [UInt8], what: String) throws -> [UInt8] {
        guard bytes.count > 32 else { throw CoffreError.chunkDamaged(what, detail: "truncated") }
        let id = bytes.withUnsafeBytes { ChunkID(bytes: $0) }
        return try decode(Array(bytes[32...]), id: id, kind: .manifest)
    }
}
