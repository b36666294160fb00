public import CoffreCore
import CoffreSystem

/// Catalog copies (decision 0030): `catalog/<name>`, each `id · frame` like a manifest, so a
/// copy is compressed, encrypted in an encrypted vault, and verified when read. Nothing else
/// in the vault reads or deletes them; they hold no reference to a block.
extension Vault {
    static let catalogFolder = "catalog/"

    /// Stores a copy; durable when this returns. **Blocks.**
    public func saveCatalogCopy(_ plain: [UInt8], name: String) throws {
        guard StoredCatalogCopy.time(ofName: name) != nil else {
            throw CoffreError.invalidName("catalog copy", name)
        }
        let sealed = CodecWorkspace(codec: codec).seal(plain)
        guard try store.put(Self.catalogFolder + name, sealed, mode: .create, durability: .immediate) else {
            throw CoffreError(.vaultBusy, "A catalog copy named \(name) exists already in \(path)",
                              workaround: "Try again: the next copy gets another name")
        }
    }

    /// The copies, oldest first (one listing). **Blocks.**
    public func catalogCopies() throws -> [StoredCatalogCopy] {
        try store.list(prefix: Self.catalogFolder).compactMap { object in
            let name = String(object.key.dropFirst(Self.catalogFolder.count))
            guard let time = StoredCatalogCopy.time(ofName: name) else { return nil }
            return StoredCatalogCopy(name: name, takenAt: time, size: object.size)
        }.sorted { $0.name < $1.name }
    }

    /// A copy's plain bytes, verified. **Blocks.**
    public func readCatalogCopy(_ name: String) throws -> [UInt8] {
        guard StoredCatalogCopy.time(ofName: name) != nil, let bytes = try store.get(Self.catalogFolder + name) else {
            throw CoffreError.catalogCopyNotFound(name, vault: path)
        }
        return try CodecWorkspace(codec: codec).unseal(bytes, what: "catalog copy \(name)")
    }

    /// Removes copies by name; only names of copies are accepted. **Blocks.**
    public func deleteCatalogCopies(_ names: [String]) throws {
        let keys = names.filter { StoredCatalogCopy.time(ofName: $0) != nil }.map { Self.catalogFolder + $0 }
        guard !keys.isEmpty else { return }
        try store.delete(keys)
    }
}
