public import Foundation

/// `coffre-vault.json`: what a vault is, readable without any key. Never holds a key.
public struct VaultConfiguration: Codable, Sendable, Equatable {
    public var format = "coffre-vault"
    /// 1: one file per object (read by `coffre vault upgrade` only); 2: packs and a chunk index.
    public var version = VaultConfiguration.currentVersion
    public var id: String
    public var createdAt: Date
    /// Fixed block size of every disk index in this vault.
    public var blockSize: Int
    public var compression: Compression
    public var encryption: Encryption?
    /// Target size of a pack in bytes (format 2).
    public var packSize: Int?

    public struct Compression: Codable, Sendable, Equatable {
        public var algorithm = "zstd"
        public var level: Int32
    }

    public struct Encryption: Codable, Sendable, Equatable {
        public var cipher = "aes-256-gcm"
        public var chunkID = "hmac-sha256"
        /// HMAC of a constant under a key derived from the master key: recognises the right key.
        public var keyCheck: String
        /// Where the key file was when the vault was created (a hint, not the key).
        public var keyFile: String?
    }

    public static let currentVersion = 2
    public static let fileName = "coffre-vault.json"
    /// Default block size; see docs/decisions/0002-block-size.md.
    public static let defaultBlockSize = 64 << 10
    public static let defaultCompressionLevel: Int32 = 1
    /// Default pack size; see docs/decisions/0016-storage-v2-packs.md.
    public static let defaultPackSize = 16 << 20
    public static let allowedBlockSizes = (14...22).map { 1 << $0 }
}
