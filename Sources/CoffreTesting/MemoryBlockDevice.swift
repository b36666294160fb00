public import CoffreCore
import Foundation

/// A disk held in memory, for tests: bytes plus the ranges that count as allocated.
public final class MemoryBlockDevice: BlockDevice, @unchecked Sendable {
    public let name: String
    public let bytes: [UInt8]
    /// Ranges reported as data; nil means the whole disk.
    public let allocated: [Range<Int64>]?

    public var size: Int64 { Int64(bytes.count) }

    public init(name: String, bytes: [UInt8], allocated: [Range<Int64>]? = nil) {
        self.name = name
        self.bytes = bytes
        self.allocated = allocated
    }

    public func dataExtents(in range: Range<Int64>) throws -> [Range<Int64>] {
        guard let allocated else { return [range] }
        return allocated.compactMap { r in
            let lower = max(r.lowerBound, range.lowerBound), upper = min(r.upperBound, range.upperBound)
            return lower < upper ? lower..<upper : nil
        }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws {
        let start = Int(offset)
        let end = min(bytes.count, start + buffer.count)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        if start < end {
            bytes.withUnsafeBytes { src in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[start..<end]))
            }
        }
    }
}

/// A small, fast, seedable generator (SplitMix64) for reproducible test data.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` random bytes.
    public mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { raw in
            var i = 0
            while i + 8 <= count { raw.storeBytes(of: next(), toByteOffset: i, as: UInt64.self); i += 8 }
            while i < count { raw[i] = UInt8(truncatingIfNeeded: next()); i += 1 }
        }
        return out
    }
}

/// A memory disk with changed-block tracking, for tests: `changed` is what a dirty bitmap
/// would report since `changesSince`. `readRanges` records every read, to check what the
/// vault touched.
public final class ChangedMemoryDevice: ChangeTrackingDevice, @unchecked Sendable {
    public let disk: MemoryBlockDevice
    public let changesSince: String
    public let changed: [Range<Int64>]
    private let lock = NSLock()
    private var reads: [Range<Int64>] = []

    public init(_ disk: MemoryBlockDevice, since point: String, changed: [Range<Int64>]) {
        self.disk = disk
        self.changesSince = point
        self.changed = changed
    }

    public var name: String { disk.name }
    public var size: Int64 { disk.size }
    public var readRanges: [Range<Int64>] { lock.withLock { reads } }

    public func dataExtents(in range: Range<Int64>) throws -> [Range<Int64>] { try disk.dataExtents(in: range) }

    public func changedExtents(in range: Range<Int64>) throws -> [Range<Int64>] {
        changed.compactMap { r in
            let lower = max(r.lowerBound, range.lowerBound), upper = min(r.upperBound, range.upperBound)
            return lower < upper ? lower..<upper : nil
        }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws {
        lock.withLock { reads.append(offset..<(offset + Int64(buffer.count))) }
        try disk.read(into: buffer, at: offset)
    }
}
