public import CoffreCore
import Crypto
import Foundation

/// API tokens and their roles, kept hashed (SHA-256) in the catalog: every node sharing the
/// catalog accepts every token, and a stolen catalog lets nobody in. The plain token is shown
/// once, when it is created.
public final class TokenStore: Sendable {
    /// Replaces a whole file durably and atomically, readable by its owner only (mode 600),
    /// off Swift's cooperative pool. The application passes CoffreSystem's
    /// `FileIO.writeFileAtomically` on a thread of its own: the server does no POSIX work itself.
    public typealias PrivateFileWriter = @Sendable (_ path: String, _ bytes: [UInt8]) async throws -> Void

    public let catalog: any Catalog

    public init(catalog: any Catalog) {
        self.catalog = catalog
    }

    /// The tokens of `catalog`. Tokens an earlier version kept in `<data>/tokens.json` are
    /// copied into the catalog first, and the file renamed `tokens.json.imported`. When the
    /// catalog has no token at all, an admin token is created and written in plain text to
    /// `<data>/admin-token` (mode 600) — once, even when several nodes start together.
    /// - Returns: the store and the admin token file's path when one was just created.
    public static func openCreatingAdmin(
        catalog: any Catalog, dataFolder: String, writer: @escaping PrivateFileWriter
    ) async throws -> (store: TokenStore, newAdminTokenFile: String?) {
        let store = TokenStore(catalog: catalog)
        try await store.importFile(dataFolder + "/tokens.json")
        let (token, entry) = Self.make(name: "admin", role: .admin)
        guard try await catalog.insertToken(entry, ifNoneExists: true) else { return (store, nil) }
        let file = dataFolder + "/admin-token"
        try await writer(file, Array((token + "\n").utf8))
        return (store, file)
    }

    /// Copies the tokens of a `tokens.json` the catalog lacks, then renames the file.
    func importFile(_ path: String) async throws {
        guard let data = FileManager.default.contents(atPath: path) else { return }
        let entries: [APIToken]
        do {
            entries = try APIJSON.decoder.decode([APIToken].self, from: data)
        } catch {
            throw CoffreError(.invalidConfiguration, "\(path) is not a valid token file: \(error)",
                              workaround: "Fix the file, or move it aside and restart to get a new admin token")
        }
        for entry in entries where try await catalog.token(hash: entry.hash) == nil {
            try await catalog.insertToken(entry, ifNoneExists: false)
        }
        let imported = path + ".imported"
        try? FileManager.default.removeItem(atPath: imported)
        do {
            try FileManager.default.moveItem(atPath: path, toPath: imported)
        } catch {
            // Another node of the same data folder moved it first: its tokens are in the catalog.
            guard !FileManager.default.fileExists(atPath: imported) else { return }
            throw CoffreError(.invalidConfiguration, "\(path) was imported into the catalog but cannot be renamed: \(error)",
                              workaround: "Check the data folder's permissions")
        }
    }

    /// Every token's name, role and hash, oldest first.
    public func all() async throws -> [APIToken] {
        try await catalog.tokens()
    }

    /// Creates a token with `role`, records its hash and returns the token (shown only now).
    @discardableResult
    public func create(name: String, role: Role) async throws -> String {
        let (token, entry) = Self.make(name: name, role: role)
        try await catalog.insertToken(entry, ifNoneExists: false)
        return token
    }

    /// The role of `token`, or `nil` when it is unknown.
    /// - Throws: when the catalog cannot be read (the request fails as the catalog does, 503).
    public func role(of token: String) async throws -> Role? {
        try await catalog.token(hash: Self.hash(token))?.role
    }

    private static func make(name: String, role: Role) -> (token: String, entry: APIToken) {
        var bytes = [UInt8](repeating: 0, count: 32)
        for index in bytes.indices { bytes[index] = UInt8.random(in: .min ... .max) }
        let token = "cof_" + hex(bytes)
        return (token, APIToken(name: name, role: role, hash: hash(token), createdAt: Date()))
    }

    static func hash(_ token: String) -> String { hex(Array(SHA256.hash(data: Data(token.utf8)))) }

    private static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }
}
