import CoffreCore
import CoffreSystem
import Foundation

/// The key file of an encrypted vault: 32 random bytes, stored as 64 hex digits (or raw).
enum KeyFile {
    static func read(_ path: String) throws -> [UInt8] {
        let bytes: [UInt8]?
        do {
            bytes = try FileIO.readFile(path)
        } catch {
            throw CoffreError.encryptionKeyMissing("\(path): \(error.message)")
        }
        guard let bytes else { throw CoffreError.encryptionKeyMissing("\(path) does not exist") }
        if bytes.count == 32 { return bytes }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.utf8.count == 64 else {
            throw CoffreError.encryptionKeyMissing("\(path) is not 32 bytes or 64 hex digits")
        }
        var key: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else {
                throw CoffreError.encryptionKeyMissing("\(path) is not 32 bytes or 64 hex digits")
            }
            key.append(byte)
            index = next
        }
        return key
    }

    /// Creates a new key file (mode 600), refusing to replace an existing one.
    static func generate(_ path: String) throws -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        let key = (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) }
        let text = key.map { String(format: "%02x", $0) }.joined() + "\n"
        let fd = try FileIO.open(path, [.writeOnly, .create, .exclusive], mode: 0o600)
        defer { FileIO.close(fd) }
        try FileIO.write(fd, Array(text.utf8), path: path)
        try FileIO.fsync(fd, path: path)
        return key
    }
}
