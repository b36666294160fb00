public import CoffreCore
import Foundation
import Synchronization

/// The contract of `ChunkStore`, checked against any implementation: `LocalChunkStore`,
/// `MemoryChunkStore`, and the S3 store of the next issue. Each check runs on an empty store
/// (the caller makes one per check) and throws a `ConformanceFailure` naming what broke.
public enum ChunkStoreConformance {
    public struct ConformanceFailure: Error, CustomStringConvertible {
        public var check: String
        public var detail: String
        public var description: String { "\(check): \(detail)" }
    }

    /// Every check, by name.
    public static let checks: [(name: String, run: @Sendable (any ChunkStore) throws -> Void)] = [
        ("put, get and ranges", putGetAndRanges),
        ("create only when absent", createOnlyWhenAbsent),
        ("replace", replace),
        ("listings are sorted and by prefix", listings),
        ("delete", delete),
        ("deferred puts and persist", deferredAndPersist),
        ("concurrent creators: exactly one wins", concurrentCreators),
        ("large objects", largeObjects),
    ]

    static func expect(_ condition: Bool, _ check: String, _ detail: @autoclosure () -> String) throws {
        if !condition { throw ConformanceFailure(check: check, detail: detail()) }
    }

    static func bytes(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
    }

    static func putGetAndRanges(_ store: any ChunkStore) throws {
        let check = "put, get and ranges"
        let data = bytes(1000, seed: 1)
        try expect(try store.get("a/b/c") == nil, check, "an absent key reads as nil")
        try expect(try store.put("a/b/c", data, mode: .create), check, "a first create succeeds")
        try expect(try store.get("a/b/c") == data, check, "get returns what was put")
        try expect(try store.get("a/b/c", range: 10..<20) == Array(data[10..<20]), check, "a range is the bytes in it")
        try expect(try store.get("a/b/c", range: 990..<1000) == Array(data[990...]), check, "a range up to the end")
        try expect(try store.get("a/b/c", range: 0..<0) == [], check, "an empty range")
        var threw = false
        do { _ = try store.get("a/b/c", range: 990..<1001) } catch { threw = true }
        try expect(threw, check, "a range past the end is an error")
        try expect(try store.get("a/b/x", range: 0..<1) == nil, check, "a range of an absent key is nil")
        try expect(try store.put("empty", [], mode: .create) && store.get("empty") == [], check, "an empty object")
    }

    static func createOnlyWhenAbsent(_ store: any ChunkStore) throws {
        let check = "create only when absent"
        try expect(try store.put("k", [1], mode: .create), check, "first create")
        try expect(try !store.put("k", [2], mode: .create), check, "a second create returns false")
        try expect(try store.get("k") == [1], check, "a refused create leaves the object as it was")
    }

    static func replace(_ store: any ChunkStore) throws {
        let check = "replace"
        try expect(try store.put("k", [1, 2], mode: .replace), check, "replace of an absent key")
        try expect(try store.put("k", [3], mode: .replace), check, "replace of a present key")
        try expect(try store.get("k") == [3], check, "the new bytes")
    }

    static func listings(_ store: any ChunkStore) throws {
        let check = "listings are sorted and by prefix"
        let keys = ["packs/ab/2", "packs/ab/1", "packs/cd/3", "points/x", "pointsy", "index/z"]
        for (i, key) in keys.enumerated() { try store.put(key, bytes(i + 1, seed: 3), mode: .create) }
        let all = try store.list(prefix: "")
        try expect(all.map(\.key) == keys.sorted(), check, "the whole store, sorted: \(all.map(\.key))")
        try expect(all.first { $0.key == "packs/cd/3" }?.size == 3, check, "sizes are the objects' sizes")
        let packs = try store.list(prefix: "packs/")
        try expect(packs.map(\.key) == ["packs/ab/1", "packs/ab/2", "packs/cd/3"], check, "a folder prefix: \(packs.map(\.key))")
        try expect(try store.list(prefix: "packs/a").map(\.key) == ["packs/ab/1", "packs/ab/2"], check, "a partial name")
        try expect(try store.list(prefix: "points/").map(\.key) == ["points/x"], check, "a prefix ends where it says")
        try expect(try store.list(prefix: "nothing/").isEmpty, check, "no match")
    }

    static func delete(_ store: any ChunkStore) throws {
        let check = "delete"
        try store.put("d/1", [1], mode: .create)
        try store.put("d/2", [2], mode: .create)
        try store.delete(["d/1", "d/absent"])
        try expect(try store.get("d/1") == nil, check, "a deleted object is gone")
        try expect(try store.list(prefix: "d/").map(\.key) == ["d/2"], check, "listings do not show it")
        try expect(try store.put("d/1", [3], mode: .create), check, "a deleted key can be created again")
        try store.delete([])
    }

    static func deferredAndPersist(_ store: any ChunkStore) throws {
        let check = "deferred puts and persist"
        let data = bytes(4096, seed: 9)
        try expect(try store.put("p/1", data, mode: .create, durability: .deferred), check, "a deferred create")
        try expect(try store.get("p/1") == data, check, "a deferred object is visible at once")
        try store.persist()
        try expect(try store.get("p/1") == data, check, "and after persist")
    }

    static func concurrentCreators(_ store: any ChunkStore) throws {
        let check = "concurrent creators: exactly one wins"
        let winners = Mutex<[Int]>([])
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            do {
                if try store.put("race", [UInt8(i)], mode: .create) { winners.withLock { $0.append(i) } }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        try expect(failures.withLock { $0 }.isEmpty, check, "no creator fails: \(failures.withLock { $0 })")
        let won = winners.withLock { $0 }
        try expect(won.count == 1, check, "\(won.count) creators were told they won")
        try expect(try store.get("race") == [UInt8(won[0])], check, "the winner's bytes stay")
    }

    static func largeObjects(_ store: any ChunkStore) throws {
        let check = "large objects"
        let data = bytes(20 << 20, seed: 7)
        try store.put("big", data, mode: .create, durability: .deferred)
        try expect(try store.list(prefix: "big").first?.size == Int64(data.count), check, "the listed size")
        try expect(try store.get("big", range: Int64(data.count - 48)..<Int64(data.count)) == Array(data.suffix(48)), check, "the tail")
        try expect(try store.get("big") == data, check, "the whole")
    }
}
