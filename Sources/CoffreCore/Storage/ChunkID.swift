/// The 32-byte address of a stored object: SHA-256 of its plaintext, or HMAC-SHA-256 when the
/// vault is encrypted. All zeros is reserved for "zero block, not stored".
public struct ChunkID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var a: UInt64, b: UInt64, c: UInt64, d: UInt64

    /// The sentinel of an all-zero block.
    public static let zero = ChunkID(a: 0, b: 0, c: 0, d: 0)

    public init(a: UInt64, b: UInt64, c: UInt64, d: UInt64) {
        self.a = a; self.b = b; self.c = c; self.d = d
    }

    /// Reads 32 bytes (the first 32 of `bytes`).
    public init(bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= 32)
        a = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        b = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        c = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        d = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    /// Parses 64 lowercase or uppercase hex digits.
    public init?(hex: some StringProtocol) {
        guard hex.utf8.count == 64 else { return nil }
        var words: [UInt64] = []
        var index = hex.startIndex
        for _ in 0..<4 {
            let end = hex.index(index, offsetBy: 16)
            guard let word = UInt64(hex[index..<end], radix: 16) else { return nil }
            words.append(word)
            index = end
        }
        self.init(a: words[0], b: words[1], c: words[2], d: words[3])
    }

    public var isZero: Bool { self == .zero }

    /// The first 8 bytes, used where a compact key is enough (GC marks err on keeping).
    public var prefix: UInt64 { a }

    /// Writes the 32 bytes big-endian at `offset`.
    public func store(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
        buffer.storeBytes(of: a.bigEndian, toByteOffset: offset, as: UInt64.self)
        buffer.storeBytes(of: b.bigEndian, toByteOffset: offset + 8, as: UInt64.self)
        buffer.storeBytes(of: c.bigEndian, toByteOffset: offset + 16, as: UInt64.self)
        buffer.storeBytes(of: d.bigEndian, toByteOffset: offset + 24, as: UInt64.self)
    }

    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBytes { store(into: $0, at: 0) }
        return out
    }

    public var hex: String {
        func pad(_ w: UInt64) -> String {
            let s = String(w, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return pad(a) + pad(b) + pad(c) + pad(d)
    }

    public var description: String { hex }

    public static func < (l: ChunkID, r: ChunkID) -> Bool {
        (l.a, l.b, l.c, l.d) < (r.a, r.b, r.c, r.d)
    }
}
