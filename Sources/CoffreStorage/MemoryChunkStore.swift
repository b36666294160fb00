public import CoffreCore
import Synchronization

/// A chunk store in memory, for tests: the contract of `ChunkStore` and nothing more, with a
/// hook that can fail or observe any call (fault injection).
public final class MemoryChunkStore: ChunkStore {
    private let objects = Mutex<[String: [UInt8]]>([:])
    /// Called before every operation with its name ("put", "get", "list", "delete") and key;
    /// a throw fails the operation before it has any effect.
    public let hook: Mutex<(@Sendable (String, String) throws -> Void)?> = Mutex(nil)

    public init() {}

    public var location: String { "memory" }

    private func check(_ operation: String, _ key: String) throws {
        try hook.withLock { $0 }?(operation, key)
    }

    public func put(_ key: String, _ bytes: [UInt8], mode: PutMode, durability: Durability) throws -> Bool {
        try check("put", key)
        return objects.withLock { objects in
            if mode == .create, objects[key] != nil { return false }
            objects[key] = bytes
            return true
        }
    }

    public func get(_ key: String, range: Range<Int64>?) throws -> [UInt8]? {
        try check("get", key)
        guard let bytes = objects.withLock({ $0[key] }) else { return nil }
        guard let range else { return bytes }
        guard range.lowerBound >= 0, range.upperBound <= Int64(bytes.count) else {
            throw CoffreError(.ioError, "read \(range) of \(key): the object has \(bytes.count) bytes")
        }
        return Array(bytes[Int(range.lowerBound)..<Int(range.upperBound)])
    }

    public func list(prefix: String) throws -> [StoredObject] {
        try check("list", prefix)
        return objects.withLock { objects in
            objects.compactMap { $0.key.hasPrefix(prefix) ? StoredObject(key: $0.key, size: Int64($0.value.count)) : nil }
        }.sorted { $0.key < $1.key }
    }

    public func delete(_ keys: [String]) throws {
        for key in keys { try check("delete", key) }
        objects.withLock { objects in for key in keys { objects[key] = nil } }
    }

    public func persist() throws {}

    /// Replaces an object's bytes behind the vault's back (corruption tests).
    public func tamper(_ key: String, _ change: (inout [UInt8]) -> Void) {
        objects.withLock { objects in
            guard var bytes = objects[key] else { return }
            change(&bytes)
            objects[key] = bytes
        }
    }
}
