import CoffreCore
import CoffreSystem
import Foundation

/// The name of a pack: 128 random bits, `packs/<2 hex>/<32 hex>` in the store.
struct PackID: Hashable, Sendable, Comparable, CustomStringConvertible {
    var high: UInt64
    var low: UInt64

    static func random() -> PackID {
        var generator = SystemRandomNumberGenerator()
        return PackID(high: generator.next(), low: generator.next())
    }

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    init?(hex: some StringProtocol) {
        guard hex.utf8.count == 32, let high = UInt64(hex.prefix(16), radix: 16),
              let low = UInt64(hex.suffix(16), radix: 16) else { return nil }
        self.init(high: high, low: low)
    }

    init?(key: String) {
        guard key.hasPrefix(Self.folder), let slash = key.lastIndex(of: "/") else { return nil }
        self.init(hex: key[key.index(after: slash)...])
    }

    var hex: String {
        String(high, radix: 16).leftPadded(to: 16) + String(low, radix: 16).leftPadded(to: 16)
    }

    static let folder = "packs/"
    var key: String { "\(Self.folder)\(hex.prefix(2))/\(hex)" }
    var description: String { hex }

    static func < (l: PackID, r: PackID) -> Bool { (l.high, l.low) < (r.high, r.low) }
}

/// Where an object is: a byte range of a pack.
struct ObjectLocation: Sendable, Equatable {
    var pack: PackID
    var offset: UInt32
    var length: UInt32

    var range: Range<Int64> { Int64(offset)..<(Int64(offset) + Int64(length)) }
}

/// One object in a pack's table.
struct PackEntry: Sendable, Equatable {
    var kind: ObjectKind
    var id: ChunkID
    var offset: UInt32
    var length: UInt32

    /// Where its frame is in the pack's bytes.
    var range: Range<Int> { Int(offset)..<(Int(offset) + Int(length)) }
}

extension CodecWorkspace {
    /// Whether a pack entry's frame decodes and matches its id.
    func verifies(_ frame: [UInt8], _ entry: PackEntry) -> Bool {
        (try? decode(frame, id: entry.id, kind: entry.kind) { _ in }) != nil
    }
}

/// A pack: the stored frames of many objects, each readable on its own (`ChunkCodec` frames:
/// compressed, encrypted and authenticated one by one), then the pack's table — itself a frame
/// of kind `packTable`, encrypted in an encrypted vault — then a 48-byte trailer in clear:
/// the table's id (32 bytes), its offset (UInt64 LE), its length (UInt32 LE) and `"CFP2"`.
/// A pack describes itself: the chunk index can always be rebuilt from the packs alone.
/// See docs/decisions/0016-storage-v2-packs.md.
enum PackFormat {
    static let trailerSize = 48
    static let magic: [UInt8] = Array("CFP2".utf8)
    static let tableMagic: [UInt8] = Array("CFT2".utf8)
    static let tableEntrySize = 41

    static func encodeTable(_ entries: [PackEntry]) -> [UInt8] {
        var bytes = tableMagic + [UInt8](repeating: 0, count: 4 + entries.count * tableEntrySize)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(entries.count).littleEndian, toByteOffset: 4, as: UInt32.self)
            for (i, entry) in entries.enumerated() {
                let at = 8 + i * tableEntrySize
                raw[at] = entry.kind.rawValue
                entry.id.store(into: raw, at: at + 1)
                raw.storeBytes(of: entry.offset.littleEndian, toByteOffset: at + 33, as: UInt32.self)
                raw.storeBytes(of: entry.length.littleEndian, toByteOffset: at + 37, as: UInt32.self)
            }
        }
        return bytes
    }

    static func decodeTable(_ bytes: UnsafeRawBufferPointer, pack: PackID, size: Int64) throws -> [PackEntry] {
        let damaged = CoffreError.chunkDamaged("pack \(pack.hex)", detail: "its table is unreadable")
        guard bytes.count >= 8, bytes.prefix(4).elementsEqual(tableMagic) else { throw damaged }
        let count = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        guard bytes.count == 8 + count * tableEntrySize else { throw damaged }
        var entries: [PackEntry] = []
        entries.reserveCapacity(count)
        for i in 0..<count {
            let at = 8 + i * tableEntrySize
            guard let kind = ObjectKind(rawValue: bytes[at]) else { throw damaged }
            let entry = PackEntry(
                kind: kind, id: ChunkID(bytes: UnsafeRawBufferPointer(rebasing: bytes[(at + 1)...])),
                offset: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at + 33, as: UInt32.self)),
                length: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at + 37, as: UInt32.self)))
            guard Int64(entry.offset) + Int64(entry.length) <= size else { throw damaged }
            entries.append(entry)
        }
        return entries
    }

    /// Reads a pack's table: its trailer, then the table frame (two ranged reads), verified.
    static func readTable(_ store: any ChunkStore, pack: PackID, size: Int64, workspace: CodecWorkspace) throws -> [PackEntry] {
        let damaged = CoffreError.chunkDamaged("pack \(pack.hex)", detail: "its trailer is unreadable")
        guard size >= Int64(trailerSize) else { throw damaged }
        guard let trailer = try store.get(pack.key, range: (size - Int64(trailerSize))..<size) else {
            throw CoffreError.chunkMissing("pack \(pack.hex)")
        }
        let (tableID, offset, length) = try trailer.withUnsafeBytes { raw in
            guard raw[44..<48].elementsEqual(magic) else { throw damaged }
            return (ChunkID(bytes: raw),
                    Int64(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 32, as: UInt64.self))),
                    Int64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 40, as: UInt32.self))))
        }
        guard offset >= 0, length > 0, offset + length == size - Int64(trailerSize) else { throw damaged }
        guard let frame = try store.get(pack.key, range: offset..<(offset + length)) else {
            throw CoffreError.chunkMissing("pack \(pack.hex)")
        }
        return try workspace.decode(frame, id: tableID, kind: .packTable) {
            try decodeTable($0, pack: pack, size: offset)
        }
    }

    /// The table of a pack held whole in memory (verify, repacking).
    static func table(of bytes: [UInt8], pack: PackID, workspace: CodecWorkspace) throws -> [PackEntry] {
        let damaged = CoffreError.chunkDamaged("pack \(pack.hex)", detail: "its trailer is unreadable")
        guard bytes.count >= trailerSize else { throw damaged }
        let end = bytes.count - trailerSize
        let (tableID, offset, length) = try bytes.withUnsafeBytes { raw in
            let trailer = UnsafeRawBufferPointer(rebasing: raw[end...])
            guard trailer[44..<48].elementsEqual(magic) else { throw damaged }
            return (ChunkID(bytes: trailer),
                    Int(UInt64(littleEndian: trailer.loadUnaligned(fromByteOffset: 32, as: UInt64.self))),
                    Int(UInt32(littleEndian: trailer.loadUnaligned(fromByteOffset: 40, as: UInt32.self))))
        }
        guard offset >= 0, length > 0, offset + length == end else { throw damaged }
        return try workspace.decode(Array(bytes[offset..<end]), id: tableID, kind: .packTable) {
            try decodeTable($0, pack: pack, size: Int64(offset))
        }
    }
}

/// Gathers frames into one pack. One per worker thread; not thread-safe.
final class PackBuilder {
    let id = PackID.random()
    private(set) var bytes: [UInt8] = []
    private(set) var entries: [PackEntry] = []

    init(capacity: Int) {
        bytes.reserveCapacity(capacity + (1 << 20))
    }

    var size: Int { bytes.count }
    var isEmpty: Bool { entries.isEmpty }

    func append(_ kind: ObjectKind, _ id: ChunkID, frame: UnsafeRawBufferPointer) -> ObjectLocation {
        let offset = UInt32(bytes.count)
        bytes.append(contentsOf: frame)
        entries.append(PackEntry(kind: kind, id: id, offset: offset, length: UInt32(frame.count)))
        return ObjectLocation(pack: self.id, offset: offset, length: UInt32(frame.count))
    }

    /// Appends the table and the trailer; the pack is complete.
    func finish(with workspace: CodecWorkspace) -> [UInt8] {
        let table = PackFormat.encodeTable(entries)
        let tableID = workspace.codec.id(of: table)
        let frame = workspace.encode(table, id: tableID, kind: .packTable)
        let tableOffset = UInt64(bytes.count)
        bytes += frame
        var trailer = tableID.bytes + [UInt8](repeating: 0, count: 16)
        trailer.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: tableOffset.littleEndian, toByteOffset: 32, as: UInt64.self)
            raw.storeBytes(of: UInt32(frame.count).littleEndian, toByteOffset: 40, as: UInt32.self)
        }
        trailer.replaceSubrange(44..<48, with: PackFormat.magic)
        bytes += trailer
        return bytes
    }
}
