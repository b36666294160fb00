public import CoffreCore
import CoffreSystem
import Foundation

/// A Coffre vault: a configuration, a chunk store, and the recovery points in it.
///
/// Every recovery point holds a complete index of each of its disks; the store holds each
/// distinct block once. Expiring a point removes its manifest; collection frees what no live
/// point references. See ARCHITECTURE.md, "Storage model".
public final class Vault: Sendable {
    public let path: String
    public let configuration: VaultConfiguration
    public let store: any ChunkStore
    public let codec: ChunkCodec
    /// Worker threads for hashing, compression and I/O (`COFFRE_WORKERS` overrides).
    public let width: Int
    /// The block accounting of the live points, kept up to date by commits and expiries.
    let ledger = AccountingLedger()

    public var blockSize: Int { configuration.blockSize }
    public var pageEntries: Int { DiskIndex.pageEntries(blockSize: blockSize) }
    public var isEncrypted: Bool { configuration.encryption != nil }

    init(path: String, configuration: VaultConfiguration, keys: VaultKeys?) {
        self.path = path
        self.configuration = configuration
        self.store = LocalChunkStore(root: path)
        self.codec = ChunkCodec(keys: keys, compressionLevel: configuration.compression.level)
        let override = ProcessInfo.processInfo.environment["COFFRE_WORKERS"].flatMap(Int.init)
        self.width = max(1, override ?? max(2, ProcessInfo.processInfo.activeProcessorCount))
    }

    /// Creates a vault in a new or empty directory.
    /// - Parameters:
    ///   - encryptionKeyFile: encrypt with this key file; it is created (mode 600) when missing.
    public static func create(
        at path: String, blockSize: Int = VaultConfiguration.defaultBlockSize,
        encryptionKeyFile: String? = nil,
        compressionLevel: Int32 = VaultConfiguration.defaultCompressionLevel
    ) throws -> Vault {
        guard VaultConfiguration.allowedBlockSizes.contains(blockSize) else {
            throw CoffreError.invalidBlockSize(ByteSize.format(Int64(blockSize)))
        }
        let path = FileIO.absolutePath(path)
        if FileIO.exists(path) {
            guard (try? FileIO.list(path))?.isEmpty == true else { throw CoffreError.vaultAlreadyExists(path) }
        }
        var configuration = VaultConfiguration(
            id: UUID().uuidString.lowercased(), createdAt: Date(), blockSize: blockSize,
            compression: .init(level: compressionLevel))
        var keys: VaultKeys?
        if let keyFile = encryptionKeyFile {
            let keyPath = FileIO.absolutePath(keyFile)
            let master = FileIO.exists(keyPath) ? try KeyFile.read(keyPath) : try KeyFile.generate(keyPath)
            let derived = VaultKeys(master: master, vaultID: configuration.id)
            configuration.encryption = .init(keyCheck: derived.checkValue, keyFile: keyPath)
            keys = derived
        }
        try FileIO.makeDirectory(path, mode: 0o700)
        try LocalChunkStore.createLayout(at: path)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        // The configuration is written last: a half-created folder is not a vault.
        try FileIO.writeFileAtomically("\(path)/\(VaultConfiguration.fileName)", Array(try encoder.encode(configuration)))
        return Vault(path: path, configuration: configuration, keys: keys)
    }

    /// Opens an existing vault.
    /// - Parameter encryptionKeyFile: overrides the key file path the vault remembers.
    public static func open(at path: String, encryptionKeyFile: String? = nil) throws -> Vault {
        let path = FileIO.absolutePath(path)
        guard let bytes = try? FileIO.readFile("\(path)/\(VaultConfiguration.fileName)") else {
            throw CoffreError.vaultNotFound(path)
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard let configuration = try? decoder.decode(VaultConfiguration.self, from: Data(bytes)),
              configuration.format == "coffre-vault" else {
            throw CoffreError.vaultFormatUnsupported("unreadable \(VaultConfiguration.fileName)")
        }
        guard configuration.version == 1 else {
            throw CoffreError.vaultFormatUnsupported("version \(configuration.version)")
        }
        guard VaultConfiguration.allowedBlockSizes.contains(configuration.blockSize) else {
            throw CoffreError.vaultFormatUnsupported("block size \(configuration.blockSize)")
        }
        var keys: VaultKeys?
        if let encryption = configuration.encryption {
            guard let keyFile = encryptionKeyFile ?? encryption.keyFile else {
                throw CoffreError.encryptionKeyMissing("no key file given")
            }
            let derived = VaultKeys(master: try KeyFile.read(keyFile), vaultID: configuration.id)
            guard derived.checkValue == encryption.keyCheck else { throw CoffreError.wrongEncryptionKey() }
            keys = derived
        }
        return Vault(path: path, configuration: configuration, keys: keys)
    }

    // MARK: Points

    /// Every live recovery point, oldest first.
    /// - Parameter skippingDamaged: leave out manifests that fail to decode instead of throwing
    ///   (collection must never skip one: it could not know what the manifest references).
    public func points(item: String? = nil, skippingDamaged: Bool = false) throws -> [RecoveryPointManifest] {
        let workspace = CodecWorkspace(codec: codec)
        var points: [RecoveryPointManifest] = []
        for name in try store.manifestNames() {
            guard let bytes = try store.readManifest(name) else { continue }  // expired meanwhile
            let manifest: RecoveryPointManifest
            do {
                manifest = try RecoveryPointManifest.decode(bytes, name: name, with: workspace)
            } catch let error as CoffreError where skippingDamaged && error.code == .chunkDamaged {
                continue
            }
            if item == nil || manifest.item == item { points.append(manifest) }
        }
        return points.sorted { ($0.time, $0.id) < ($1.time, $1.id) }
    }

    /// One live recovery point.
    public func point(_ id: String) throws -> RecoveryPointManifest {
        guard Naming.isValid(id), let bytes = try store.readManifest(id) else { throw CoffreError.pointNotFound(id) }
        return try RecoveryPointManifest.decode(bytes, name: id, with: CodecWorkspace(codec: codec))
    }

    /// Expires a point: its manifest goes; its blocks stay until a collection finds them unreferenced.
    /// Expiry never changes what another point restores.
    public func expire(_ id: String) throws {
        let manifest = try point(id)
        let references = ledger.referencesBeforeExpiry(of: manifest, vault: self)
        try store.removeManifest(id)
        ledger.expired(id, references: references)
    }

    // MARK: Objects

    /// Reads and verifies an object. Throws `ChunkMissing` or `ChunkDamaged`.
    func load(_ kind: ObjectKind, _ id: ChunkID, with workspace: CodecWorkspace) throws -> [UInt8] {
        guard let frame = try store.read(kind, id) else { throw CoffreError.chunkMissing(id.hex) }
        return try workspace.decode(frame, id: id, kind: kind)
    }

    /// The ids listed by an index object (a root or a page), verified.
    func loadIDs(_ id: ChunkID, with workspace: CodecWorkspace) throws -> [ChunkID] {
        try DiskIndex.ids(load(.index, id, with: workspace))
    }
}
