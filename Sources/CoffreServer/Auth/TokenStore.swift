import CoffreCore
import Crypto
import Foundation
import Synchronization

/// API tokens and their roles, kept hashed (SHA-256) in `tokens.json` (mode 600).
///
/// Only the hash of a token is stored: a stolen `tokens.json` does not let anyone in. The plain
/// token is shown once, when it is created.
public final class TokenStore: Sendable {
    /// Replaces a whole file durably and atomically, readable by its owner only (mode 600),
    /// off Swift's cooperative pool. The application passes CoffreSystem's
    /// `FileIO.writeFileAtomically` on a thread of its own: the server does no POSIX work itself.
    public typealias PrivateFileWriter = @Sendable (_ path: String, _ bytes: [UInt8]) async throws -> Void

    /// One token as stored.
    public struct Entry: Codable, Sendable, Equatable {
        public var name: String
        public var role: Role
        /// Hex SHA-256 of the token.
        public var hash: String
        public var createdAt: Date
    }

    /// The file the entries are saved to; `nil` keeps them in memory (tests).
    public let path: String?
    private let writer: PrivateFileWriter
    private let entries: Mutex<[Entry]>
    /// The last save: saves run one after the other, each writing the entries as they are
    /// then, so a slower earlier save never lands over a later one.
    private let lastSave = Mutex<Task<Void, any Error>?>(nil)

    /// Tokens kept in memory only.
    public init() {
        self.path = nil
        self.writer = { _, _ in }
        self.entries = Mutex([])
    }

    /// Opens the tokens of a data folder (`DIR/tokens.json`), or none when the file is missing.
    public init(path: String, writer: @escaping PrivateFileWriter) throws {
        self.path = path
        self.writer = writer
        guard let data = FileManager.default.contents(atPath: path) else {
            self.entries = Mutex([])
            return
        }
        do {
            self.entries = Mutex(try APIJSON.decoder.decode([Entry].self, from: data))
        } catch {
            throw CoffreError(.invalidConfiguration, "\(path) is not a valid token file: \(error)",
                              workaround: "Fix the file, or remove it and restart to get a new admin token")
        }
    }

    /// Opens `<data>/tokens.json`; when there is no token yet, creates an admin token and writes
    /// it in plain text to `<data>/admin-token` (mode 600).
    /// - Returns: the store and the admin token file's path when one was just created.
    public static func openCreatingAdmin(
        dataFolder: String, writer: @escaping PrivateFileWriter
    ) async throws -> (store: TokenStore, newAdminTokenFile: String?) {
        let store = try TokenStore(path: dataFolder + "/tokens.json", writer: writer)
        guard store.isEmpty else { return (store, nil) }
        let token = try await store.create(name: "admin", role: .admin)
        let file = dataFolder + "/admin-token"
        try await writer(file, Array((token + "\n").utf8))
        return (store, file)
    }

    public var isEmpty: Bool { entries.withLock { $0.isEmpty } }

    /// Every token's name, role and hash.
    public var all: [Entry] { entries.withLock { $0 } }

    /// Creates a token with `role`, saves its hash and returns the token (shown only now).
    @discardableResult
    public func create(name: String, role: Role) async throws -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        for index in bytes.indices { bytes[index] = UInt8.random(in: .min ... .max) }
        let token = "cof_" + Self.hex(bytes)
        let entry = Entry(name: name, role: role, hash: Self.hash(token), createdAt: Date())
        entries.withLock { $0.append(entry) }
        try await save()
        return token
    }

    /// The role of `token`, or `nil` when it is unknown.
    public func role(of token: String) -> Role? {
        let digest = Self.hash(token)
        return entries.withLock { $0.first { $0.hash == digest }?.role }
    }

    private func save() async throws {
        guard let path else { return }
        let save = lastSave.withLock { last in
            let previous = last
            let next = Task { [writer] in
                _ = await previous?.result
                let encoder = APIJSON.encoder
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try await writer(path, Array(try encoder.encode(self.all)))
            }
            last = next
            return next
        }
        try await save.value
    }

    static func hash(_ token: String) -> String { hex(Array(SHA256.hash(data: Data(token.utf8)))) }

    private static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }
}
