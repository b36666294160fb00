import CoffreCore
import CoffreStorage
import Foundation

/// Where a vault keeps its bytes, as `coffre.json` ("vault") or `--vault` name it.
enum VaultBackend: Codable, Sendable, Equatable {
    /// A folder of this machine (`LocalChunkStore`): packs as files, fsynced.
    case local(path: String)

    /// The one place a backend is chosen: opens the vault, or creates it when `creating` and
    /// there is none yet.
    func openVault(encryptionKeyFile: String?, creating: Bool = false) throws -> Vault {
        switch self {
        case .local(let path):
            if creating && !FileManager.default.fileExists(atPath: path + "/" + VaultConfiguration.fileName) {
                return try Vault.create(at: path, encryptionKeyFile: encryptionKeyFile)
            }
            return try Vault.open(at: path, encryptionKeyFile: encryptionKeyFile)
        }
    }

    /// A relative folder is taken from `root`.
    func resolved(against root: String) -> VaultBackend {
        switch self {
        case .local(let path): .local(path: path.hasPrefix("/") ? path : root + "/" + path)
        }
    }
}
