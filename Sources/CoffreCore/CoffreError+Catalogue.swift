/// The data plane's error catalogue.
extension CoffreError {
    public static func vaultNotFound(_ path: String) -> CoffreError {
        CoffreError(.vaultNotFound, "No Coffre vault at \(path)",
                    workaround: "Create one with `coffre vault create \(path)` or pass the right --vault path")
    }
    public static func vaultAlreadyExists(_ path: String) -> CoffreError {
        CoffreError(.vaultAlreadyExists, "\(path) already holds a vault or other files",
                    workaround: "Choose a new or empty directory")
    }
    public static func vaultFormatUnsupported(_ detail: String) -> CoffreError {
        CoffreError(.vaultFormatUnsupported, "The vault's format is not supported by this version of Coffre: \(detail)",
                    workaround: "Use the Coffre version that created the vault or a newer one")
    }
    public static func vaultUpgradeRequired(_ path: String) -> CoffreError {
        CoffreError(.vaultUpgradeRequired,
                    "The vault at \(path) is in format 1 (one file per block); this version of Coffre writes format 2 (packs)",
                    workaround: "Run `coffre vault upgrade \(path)` once (it is crash-safe and can be resumed); no backup may run meanwhile")
    }
    public static func vaultBusy(_ detail: String) -> CoffreError {
        CoffreError(.vaultBusy, "The vault is busy: \(detail)",
                    workaround: "Wait for the other operation to finish, then try again")
    }
    public static func invalidBlockSize(_ text: String) -> CoffreError {
        CoffreError(.invalidBlockSize, "Block size \(text) is not a power of two between 16 KiB and 4 MiB",
                    workaround: "Use one of 16KiB, 32KiB, 64KiB, 128KiB, 256KiB, 512KiB, 1MiB, 2MiB, 4MiB")
    }
    public static func invalidName(_ what: String, _ name: String) -> CoffreError {
        CoffreError(.invalidName, "\(what) '\(name)' is not valid",
                    workaround: "Use 1 to 128 characters from A-Z a-z 0-9 . _ - (not starting with a dot)")
    }
    public static func diskNotFound(_ path: String, reason: String) -> CoffreError {
        CoffreError(.diskNotFound, "Cannot open disk \(path): \(reason)",
                    workaround: "Check the path and that Coffre may read it")
    }
    public static func duplicateDiskName(_ name: String) -> CoffreError {
        CoffreError(.duplicateDiskName, "Two disks of one backup are named \(name)",
                    workaround: "Give every disk of an item a distinct file name")
    }
    public static func pointNotFound(_ id: String) -> CoffreError {
        CoffreError(.pointNotFound, "No recovery point \(id) in this vault",
                    workaround: "List the points with `coffre image points --item NAME`")
    }
    public static func restoreTargetExists(_ path: String) -> CoffreError {
        CoffreError(.restoreTargetExists, "\(path) already exists; restore never overwrites silently",
                    workaround: "Restore into another directory or pass --overwrite")
    }
    public static func chunkDamaged(_ id: String, detail: String) -> CoffreError {
        CoffreError(.chunkDamaged, "Stored object \(id) is damaged: \(detail)",
                    workaround: "Run `coffre vault verify` to list the affected recovery points; restore from another point")
    }
    public static func chunkMissing(_ id: String) -> CoffreError {
        CoffreError(.chunkMissing, "Stored object \(id) is missing from the vault",
                    workaround: "Run `coffre vault verify` to list the affected recovery points; restore from another point")
    }
    public static func encryptionKeyMissing(_ detail: String) -> CoffreError {
        CoffreError(.encryptionKeyMissing, "The vault is encrypted and its key file cannot be read: \(detail)",
                    workaround: "Pass --encryption-key FILE or set COFFRE_ENCRYPTION_KEY_FILE")
    }
    public static func wrongEncryptionKey() -> CoffreError {
        CoffreError(.wrongEncryptionKey, "The encryption key does not belong to this vault",
                    workaround: "Use the key file the vault was created with")
    }
    public static func cancelled() -> CoffreError {
        CoffreError(.cancelled, "The operation was cancelled; nothing of it was kept")
    }
}
