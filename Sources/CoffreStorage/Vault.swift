public import CoffreCore
import CoffreSystem
import Foundation
import Synchronization

/// A Coffre vault: a configuration, a chunk store, and the recovery points in it.
///
/// Every recovery point holds a complete index of each of its disks; the vault holds each
/// distinct block once, in packs. Expiring a point removes its manifest; collection frees what
/// no live point references. See ARCHITECTURE.md, "Storage model" and "Storage v2", and
/// docs/decisions/0016-storage-v2-packs.md.
///
/// Keys in the store: `coffre-vault.json`, `packs/<2 hex>/<pack>`, `index/<segment>`,
/// `points/<point>`, `sessions/<session>`, `gc/lock`, `gc/condemned`, `catalog/<copy>`.
public final class Vault: Sendable {
    /// Where the vault is (the store's location), for messages.
    public let path: String
    public let configuration: VaultConfiguration
    public let store: any ChunkStore
    public let codec: ChunkCodec
    /// Worker threads for hashing, compression and I/O (`COFFRE_WORKERS` overrides).
    public let width: Int
    /// Target size of a pack (`COFFRE_PACK_SIZE`, in bytes, overrides, for benchmarks).
    let packSize: Int
    /// Objects per pack at most, whatever their size (a pack of tiny objects stays readable).
    let packEntryLimit = 1 << 14
    /// The block accounting of the live points, kept up to date by commits and expiries.
    let ledger = AccountingLedger()
    /// Where each stored object is.
    let index: ChunkIndex
    /// One collection, repair or upgrade at a time in this process (`gc/lock` across processes).
    let maintenance = Mutex(())
    /// Set once the index was rebuilt from the packs after a lookup missed: once per process.
    let repairedAfterMiss = Atomic<Bool>(false)

    public var blockSize: Int { configuration.blockSize }
    public var pageEntries: Int { DiskIndex.pageEntries(blockSize: blockSize) }
    public var isEncrypted: Bool { configuration.encryption != nil }

    /// - Parameter cacheDirectory: where the chunk index keeps its temporary record file (it
    ///   is unlinked at once: nothing stays behind).
    init(store: any ChunkStore, configuration: VaultConfiguration, keys: VaultKeys?, cacheDirectory: String) throws {
        self.path = store.location
        self.store = store
        self.configuration = configuration
        self.codec = ChunkCodec(keys: keys, compressionLevel: configuration.compression.level)
        let environment = ProcessInfo.processInfo.environment
        let override = environment["COFFRE_WORKERS"].flatMap(Int.init)
        self.width = max(1, override ?? max(2, ProcessInfo.processInfo.activeProcessorCount))
        let packOverride = environment["COFFRE_PACK_SIZE"].flatMap(Int.init).map { min(max($0, 1 << 16), 1 << 30) }
        self.packSize = packOverride ?? configuration.packSize ?? VaultConfiguration.defaultPackSize
        self.index = try ChunkIndex(directory: cacheDirectory)
    }

    // MARK: Creating and opening

    /// Creates a vault in a new or empty directory (a `LocalChunkStore`).
    /// - Parameters:
    ///   - encryptionKeyFile: encrypt with this key file; it is created (mode 600) when missing.
    public static func create(
        at path: String, blockSize: Int = VaultConfiguration.defaultBlockSize,
        encryptionKeyFile: String? = nil,
        compressionLevel: Int32 = VaultConfiguration.defaultCompressionLevel
    ) throws -> Vault {
        let path = FileIO.absolutePath(path)
        if FileIO.exists(path) {
            guard (try? FileIO.list(path))?.isEmpty == true else { throw CoffreError.vaultAlreadyExists(path) }
        }
        try LocalChunkStore.createLayout(at: path)
        return try create(in: LocalChunkStore(root: path), cacheDirectory: "\(path)/tmp", blockSize: blockSize,
                          encryptionKeyFile: encryptionKeyFile, compressionLevel: compressionLevel)
    }

    /// Creates a vault in an empty store.
    public static func create(
        in store: any ChunkStore, cacheDirectory: String, blockSize: Int = VaultConfiguration.defaultBlockSize,
        encryptionKeyFile: String? = nil, compressionLevel: Int32 = VaultConfiguration.defaultCompressionLevel
    ) throws -> Vault {
        guard VaultConfiguration.allowedBlockSizes.contains(blockSize) else {
            throw CoffreError.invalidBlockSize(ByteSize.format(Int64(blockSize)))
        }
        guard try store.list(prefix: "").isEmpty else { throw CoffreError.vaultAlreadyExists(store.location) }
        var configuration = VaultConfiguration(
            id: UUID().uuidString.lowercased(), createdAt: Date(), blockSize: blockSize,
            compression: .init(level: compressionLevel))
        configuration.packSize = store.preferredPackSize ?? VaultConfiguration.defaultPackSize
        var keys: VaultKeys?
        if let keyFile = encryptionKeyFile {
            let keyPath = FileIO.absolutePath(keyFile)
            let master = FileIO.exists(keyPath) ? try KeyFile.read(keyPath) : try KeyFile.generate(keyPath)
            let derived = VaultKeys(master: master, vaultID: configuration.id)
            configuration.encryption = .init(keyCheck: derived.checkValue, keyFile: keyPath)
            keys = derived
        }
        // The configuration is written last: a half-created store is not a vault.
        guard try store.put(VaultConfiguration.fileName, try configuration.encoded(), mode: .create) else {
            throw CoffreError.vaultAlreadyExists(store.location)
        }
        return try Vault(store: store, configuration: configuration, keys: keys, cacheDirectory: cacheDirectory)
    }

    /// Opens an existing vault in a local folder.
    /// - Parameter encryptionKeyFile: overrides the key file path the vault remembers.
    public static func open(at path: String, encryptionKeyFile: String? = nil) throws -> Vault {
        let path = FileIO.absolutePath(path)
        guard FileIO.exists("\(path)/\(VaultConfiguration.fileName)") else { throw CoffreError.vaultNotFound(path) }
        try FileIO.makeDirectory("\(path)/tmp")
        return try open(LocalChunkStore(root: path), cacheDirectory: "\(path)/tmp", encryptionKeyFile: encryptionKeyFile)
    }

    /// Opens the vault a store holds.
    public static func open(_ store: any ChunkStore, cacheDirectory: String, encryptionKeyFile: String? = nil) throws -> Vault {
        let configuration = try readConfiguration(store)
        guard configuration.version == VaultConfiguration.currentVersion else {
            if configuration.version == 1 { throw CoffreError.vaultUpgradeRequired(store.location) }
            throw CoffreError.vaultFormatUnsupported("version \(configuration.version)")
        }
        return try Vault(store: store, configuration: configuration,
                         keys: try keys(for: configuration, keyFile: encryptionKeyFile), cacheDirectory: cacheDirectory)
    }

    static func readConfiguration(_ store: any ChunkStore) throws -> VaultConfiguration {
        guard let bytes = try store.get(VaultConfiguration.fileName) else { throw CoffreError.vaultNotFound(store.location) }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard let configuration = try? decoder.decode(VaultConfiguration.self, from: Data(bytes)),
              configuration.format == "coffre-vault" else {
            throw CoffreError.vaultFormatUnsupported("unreadable \(VaultConfiguration.fileName)")
        }
        guard VaultConfiguration.allowedBlockSizes.contains(configuration.blockSize) else {
            throw CoffreError.vaultFormatUnsupported("block size \(configuration.blockSize)")
        }
        return configuration
    }

    static func keys(for configuration: VaultConfiguration, keyFile: String?) throws -> VaultKeys? {
        guard let encryption = configuration.encryption else { return nil }
        guard let keyFile = keyFile ?? encryption.keyFile else {
            throw CoffreError.encryptionKeyMissing("no key file given")
        }
        let derived = VaultKeys(master: try KeyFile.read(keyFile), vaultID: configuration.id)
        guard derived.checkValue == encryption.keyCheck else { throw CoffreError.wrongEncryptionKey() }
        return derived
    }

    // MARK: Points

    static let pointsFolder = "points/"

    /// The names of the stored manifests (one listing).
    func manifestNames() throws -> [String] {
        try store.list(prefix: Self.pointsFolder).map { String($0.key.dropFirst(Self.pointsFolder.count)) }
            .filter { !$0.contains("/") }
    }

    func readManifest(_ name: String) throws -> [UInt8]? {
        try store.get(Self.pointsFolder + name)
    }

    /// Every live recovery point, oldest first.
    /// - Parameter skippingDamaged: leave out manifests that fail to decode instead of throwing
    ///   (collection must never skip one: it could not know what the manifest references).
    public func points(item: String? = nil, skippingDamaged: Bool = false) throws -> [RecoveryPointManifest] {
        let workspace = CodecWorkspace(codec: codec)
        var points: [RecoveryPointManifest] = []
        for name in try manifestNames() {
            guard let bytes = try readManifest(name) else { continue }  // expired meanwhile
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
        guard Naming.isValid(id), let bytes = try readManifest(id) else { throw CoffreError.pointNotFound(id) }
        return try RecoveryPointManifest.decode(bytes, name: id, with: CodecWorkspace(codec: codec))
    }

    /// Expires a point: its manifest goes; its blocks stay until a collection finds them unreferenced.
    /// Expiry never changes what another point restores.
    public func expire(_ id: String) throws {
        let manifest = try point(id)
        let references = ledger.referencesBeforeExpiry(of: manifest, vault: self)
        try store.delete([Self.pointsFolder + id])
        ledger.expired(id, references: references)
    }

    // MARK: Objects

    /// Brings the chunk index up to date with the store; a damaged segment makes it rebuild
    /// the index from the packs (when no collection runs) and try again. **Blocks.**
    func refreshIndex(with workspace: CodecWorkspace) throws {
        do {
            try index.refresh(store: store, workspace: workspace)
        } catch let error as CoffreError where error.code == .chunkDamaged {
            repairIfIdle()
            try index.refresh(store: store, workspace: workspace)
        }
    }

    /// Reads and verifies an object. Throws `ChunkMissing` or `ChunkDamaged`.
    func load(_ kind: ObjectKind, _ id: ChunkID, with workspace: CodecWorkspace, avoiding: Set<PackID> = []) throws -> [UInt8] {
        try withFrame(kind, id, avoiding: avoiding) { frame in try workspace.decode(frame, id: id, kind: kind) }
    }

    /// The stored frame of an object, passed to `body`. A location whose pack is gone (a
    /// collection deleted it, another copy remains) is skipped for the next one; a miss rebuilds
    /// the index from the packs once per process (it may have lost a segment) before the object
    /// is reported missing.
    func withFrame<R>(_ kind: ObjectKind, _ id: ChunkID, avoiding: Set<PackID> = [], _ body: ([UInt8]) throws -> R) throws -> R {
        var avoid = avoiding
        var gone = Set<PackID>()
        var repaired = false
        while true {
            if let location = try index.lookup(kind, id, avoiding: avoid), !gone.contains(location.pack) {
                if let frame = try store.get(location.pack.key, range: location.range) { return try body(frame) }
                gone.insert(location.pack)
                avoid.insert(location.pack)
                continue
            }
            guard !repaired, !repairedAfterMiss.exchange(true, ordering: .relaxed) else { break }
            repaired = true
            repairIfIdle()
            gone = []
            avoid = avoiding
        }
        throw CoffreError.chunkMissing(id.hex)
    }

    /// The ids listed by an index object (a root or a page), verified.
    func loadIDs(_ id: ChunkID, with workspace: CodecWorkspace, avoiding: Set<PackID> = []) throws -> [ChunkID] {
        try DiskIndex.ids(load(.index, id, with: workspace, avoiding: avoiding))
    }

    /// The stored size of an object, nil when the index has none.
    func storedSize(_ kind: ObjectKind, _ id: ChunkID) -> Int64? {
        (try? index.lookup(kind, id)).flatMap { $0.map { Int64($0.length) } }
    }
}

extension VaultConfiguration {
    func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return Array(try encoder.encode(self))
    }
}
