import CoffreCore
import CoffreS3
import CoffreStorage
import Foundation

/// Where a vault keeps its bytes, as `coffre.json` ("vault") or `--vault` name it:
/// `{"local": {"path": "vault"}}` or `{"s3": {"endpoint": …, "bucket": …, "prefix": …}}`.
enum VaultBackend: Codable, Sendable, Equatable {
    /// A folder of this machine (`LocalChunkStore`): packs as files, fsynced.
    case local(path: String)
    /// A bucket of an S3-compatible server (`S3ChunkStore`).
    case s3(S3Location)

    /// `--vault` and its neighbours: a folder, or `s3://BUCKET/PREFIX` with an endpoint from
    /// `--endpoint` or `AWS_ENDPOINT_URL`.
    static func parse(_ text: String, s3 options: S3Options) throws -> VaultBackend {
        guard S3Location.isURL(text) else { return .local(path: text) }
        guard let endpoint = options.endpoint ?? ProcessInfo.processInfo.environment["AWS_ENDPOINT_URL"] else {
            throw CoffreError.invalidS3Location(text, detail: "no endpoint: pass --endpoint URL or set AWS_ENDPOINT_URL")
        }
        return .s3(try S3Location(
            url: text, endpoint: endpoint, region: options.region ?? ProcessInfo.processInfo.environment["AWS_REGION"],
            credentialsFile: options.credentials, caFile: options.caFile, virtualHosted: options.virtualHosted))
    }

    /// The one place a backend is chosen: the store of the vault.
    func store() throws -> any ChunkStore {
        switch self {
        case .local(let path):
            return LocalChunkStore(root: path)
        case .s3(let location):
            let credentials = try S3Credentials.load(file: location.credentialsFile, profile: location.profile)
            return try S3ChunkStore.open(location, credentials: credentials)
        }
    }

    /// Opens the vault, or creates it when `creating` and there is none yet.
    func openVault(encryptionKeyFile: String?, creating: Bool = false) throws -> Vault {
        switch self {
        case .local(let path):
            if creating && !FileManager.default.fileExists(atPath: path + "/" + VaultConfiguration.fileName) {
                return try Vault.create(at: path, encryptionKeyFile: encryptionKeyFile)
            }
            return try Vault.open(at: path, encryptionKeyFile: encryptionKeyFile)
        case .s3:
            let store = try store()
            if creating, try store.get(VaultConfiguration.fileName) == nil {
                return try Vault.create(in: store, cacheDirectory: try Self.cacheDirectory(),
                                        encryptionKeyFile: encryptionKeyFile)
            }
            return try Vault.open(store, cacheDirectory: try Self.cacheDirectory(), encryptionKeyFile: encryptionKeyFile)
        }
    }

    /// Creates a new vault (`coffre vault create`).
    func createVault(blockSize: Int, encryptionKeyFile: String?, compressionLevel: Int32, createBucket: Bool = false) throws -> Vault {
        switch self {
        case .local(let path):
            return try Vault.create(at: path, blockSize: blockSize, encryptionKeyFile: encryptionKeyFile,
                                    compressionLevel: compressionLevel)
        case .s3(let location):
            if createBucket {
                try S3ChunkStore.createBucket(
                    location, credentials: S3Credentials.load(file: location.credentialsFile, profile: location.profile))
            }
            return try Vault.create(in: try store(), cacheDirectory: try Self.cacheDirectory(), blockSize: blockSize,
                                    encryptionKeyFile: encryptionKeyFile, compressionLevel: compressionLevel)
        }
    }

    /// Where the chunk index of a vault that is not a folder keeps its (unlinked) record file:
    /// `$COFFRE_CACHE_DIR`, else /var/tmp (on disk, not in RAM like /tmp may be).
    static func cacheDirectory() throws -> String {
        let path = ProcessInfo.processInfo.environment["COFFRE_CACHE_DIR"]
            ?? (FileManager.default.fileExists(atPath: "/var/tmp") ? "/var/tmp" : NSTemporaryDirectory())
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A relative folder is taken from `root`.
    func resolved(against root: String) -> VaultBackend {
        switch self {
        case .local(let path): .local(path: AppOptions.resolve(path, against: root))
        case .s3: self
        }
    }

    private enum CodingKeys: String, CodingKey { case local, s3 }
    private struct Folder: Codable { var path: String }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let folder = try c.decodeIfPresent(Folder.self, forKey: .local) {
            self = .local(path: folder.path)
        } else if let location = try c.decodeIfPresent(S3Location.self, forKey: .s3) {
            self = .s3(location)
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath,
                                                    debugDescription: "\"vault\" needs a \"local\" or an \"s3\" section"))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .local(let path): try c.encode(Folder(path: path), forKey: .local)
        case .s3(let location): try c.encode(location, forKey: .s3)
        }
    }
}
