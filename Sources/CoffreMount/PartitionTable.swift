/// A disk's partitions, read from its GPT or MBR the way Linux numbers them: GPT entries by
/// their slot (1…128), MBR primaries 1–4 and logical partitions from 5 on.
public struct PartitionTable: Sendable, Equatable {
    public enum Scheme: String, Sendable, Codable {
        case gpt, mbr
    }

    public struct Partition: Sendable, Equatable, Codable {
        public var number: Int
        /// Bytes from the start of the disk.
        public var offset: Int64
        public var size: Int64
        /// GPT: the type GUID (upper case); MBR: the type byte in hex (`83`, `0c`).
        public var type: String
        /// GPT's partition name, when set.
        public var name: String?
    }

    public var scheme: Scheme
    public var sectorSize: Int
    public var partitions: [Partition]

    /// Reads the table of a disk of `size` bytes through `read(offset, count)`; nil when the disk
    /// has none (a blank disk, or a file system on the whole disk). Entries that do not fit in
    /// the disk are left out: a damaged table never yields a range outside it.
    public static func read(size: Int64, _ read: (Int64, Int) throws -> [UInt8]) throws -> PartitionTable? {
        for sectorSize in [512, 4096] where Int64(sectorSize) * 2 <= size {
            let header = try read(Int64(sectorSize), 92)
            if header.count == 92, header.starts(with: Array("EFI PART".utf8)) {
                return try gpt(header: header, sectorSize: sectorSize, size: size, read)
            }
        }
        guard size >= 512 else { return nil }
        let sector = try read(0, 512)
        guard sector.count == 512, sector[510] == 0x55, sector[511] == 0xAA else { return nil }
        // A FAT or NTFS boot sector ends as an MBR does: a file system on the whole disk.
        if [.vfat, .ntfs, .xfs].contains(FileSystemKind.probe(sector)) { return nil }
        let entries = (0..<4).map { MBREntry(sector, at: 446 + 16 * $0) }
        // A valid MBR has boot flags 0 or 0x80; a FAT boot sector that looks otherwise is not one.
        guard entries.allSatisfy({ $0.status == 0 || $0.status == 0x80 }), entries.contains(where: { $0.type != 0 }) else {
            return nil
        }
        var partitions: [Partition] = []
        for (index, entry) in entries.enumerated() where entry.type != 0 && entry.sectors > 0 {
            if entry.isExtended {
                partitions += try logicalPartitions(extendedStart: Int64(entry.start), extendedSectors: Int64(entry.sectors), size: size, read)
            } else if let partition = Self.partition(number: index + 1, firstSector: Int64(entry.start),
                                                     sectors: Int64(entry.sectors), sectorSize: 512, size: size,
                                                     type: hex(entry.type)) {
                partitions.append(partition)
            }
        }
        return PartitionTable(scheme: .mbr, sectorSize: 512, partitions: partitions.sorted { $0.number < $1.number })
    }

    private static func gpt(header: [UInt8], sectorSize: Int, size: Int64, _ read: (Int64, Int) throws -> [UInt8]) throws -> PartitionTable {
        let entriesLBA = Int64(littleEndian(header, 72, 8))
        let count = Int(littleEndian(header, 80, 4))
        let entrySize = Int(littleEndian(header, 84, 4))
        var partitions: [Partition] = []
        if (1...1024).contains(count), entrySize >= 128, entrySize <= 4096,
           entriesLBA > 0, entriesLBA * Int64(sectorSize) + Int64(count * entrySize) <= size {
            let table = try read(entriesLBA * Int64(sectorSize), count * entrySize)
            for slot in 0..<min(count, table.count / entrySize) {
                let entry = Array(table[slot * entrySize..<(slot + 1) * entrySize])
                guard entry[0..<16].contains(where: { $0 != 0 }) else { continue }
                let first = Int64(littleEndian(entry, 32, 8)), last = Int64(littleEndian(entry, 40, 8))
                guard last >= first else { continue }
                var partition = Self.partition(number: slot + 1, firstSector: first, sectors: last - first + 1,
                                               sectorSize: sectorSize, size: size, type: guid(entry[0..<16]))
                partition?.name = utf16Name(entry[56..<128])
                partition.map { partitions.append($0) }
            }
        }
        return PartitionTable(scheme: .gpt, sectorSize: sectorSize, partitions: partitions)
    }

    /// The chain of extended boot records: each holds a logical partition (relative to itself)
    /// and a link to the next (relative to the extended partition).
    private static func logicalPartitions(
        extendedStart: Int64, extendedSectors: Int64, size: Int64, _ read: (Int64, Int) throws -> [UInt8]
    ) throws -> [Partition] {
        var partitions: [Partition] = []
        var ebr = extendedStart
        var seen: Set<Int64> = []
        while partitions.count < 128, seen.insert(ebr).inserted, ebr * 512 + 512 <= size {
            let sector = try read(ebr * 512, 512)
            guard sector.count == 512, sector[510] == 0x55, sector[511] == 0xAA else { break }
            let logical = MBREntry(sector, at: 446), next = MBREntry(sector, at: 462)
            if logical.type != 0, logical.sectors > 0,
               let partition = partition(number: 5 + partitions.count, firstSector: ebr + Int64(logical.start),
                                         sectors: Int64(logical.sectors), sectorSize: 512, size: size, type: hex(logical.type)) {
                partitions.append(partition)
            }
            guard next.isExtended, next.start > 0, Int64(next.start) < extendedSectors else { break }
            ebr = extendedStart + Int64(next.start)
        }
        return partitions
    }

    private static func partition(number: Int, firstSector: Int64, sectors: Int64, sectorSize: Int, size: Int64, type: String) -> Partition? {
        let (offset, o1) = firstSector.multipliedReportingOverflow(by: Int64(sectorSize))
        let (length, o2) = sectors.multipliedReportingOverflow(by: Int64(sectorSize))
        guard !o1, !o2, offset > 0, length > 0, offset <= size, length <= size - offset else { return nil }
        return Partition(number: number, offset: offset, size: length, type: type, name: nil)
    }

    private struct MBREntry {
        var status: UInt8, type: UInt8, start: UInt32, sectors: UInt32
        init(_ sector: [UInt8], at offset: Int) {
            status = sector[offset]
            type = sector[offset + 4]
            start = UInt32(littleEndian(sector, offset + 8, 4))
            sectors = UInt32(littleEndian(sector, offset + 12, 4))
        }
        var isExtended: Bool { type == 0x05 || type == 0x0F || type == 0x85 }
    }

    private static func littleEndian(_ bytes: [UInt8], _ offset: Int, _ count: Int) -> UInt64 {
        (0..<count).reversed().reduce(0) { $0 << 8 | UInt64(bytes[offset + $1]) }
    }

    private static func hex(_ byte: UInt8) -> String {
        let text = String(byte, radix: 16)
        return text.count == 1 ? "0" + text : text
    }

    /// GUIDs are stored with their first three fields little-endian.
    private static func guid(_ raw: ArraySlice<UInt8>) -> String {
        let b = Array(raw)
        let order = [3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15]
        return order.map { $0 < 0 ? "-" : (b[$0] < 16 ? "0" : "") + String(b[$0], radix: 16, uppercase: true) }.joined()
    }

    private static func utf16Name(_ raw: ArraySlice<UInt8>) -> String? {
        let b = Array(raw)
        let units = stride(from: 0, to: b.count - 1, by: 2).map { UInt16(b[$0]) | UInt16(b[$0 + 1]) << 8 }.prefix { $0 != 0 }
        let name = String(decoding: units, as: UTF16.self)
        return name.isEmpty ? nil : name
    }
}

/// The file system a partition (or a whole disk) holds, from its superblock.
public enum FileSystemKind: String, Sendable, Codable, CaseIterable {
    case ext2, ext3, ext4, xfs, btrfs, vfat, ntfs
    /// Found but not mountable as a file system.
    case swap, lvm
    case unknown

    /// How `mount -t` names the kernel's driver, and the read-only options that keep the kernel from
    /// writing to the image: no journal replay, no log recovery, no UUID clash with the
    /// original file system mounted on the same host.
    public var mountDriver: (type: String, options: [String])? {
        switch self {
        case .ext2, .ext3, .ext4: ("ext4", ["noload"])
        case .xfs: ("xfs", ["norecovery", "nouuid"])
        case .btrfs: ("btrfs", ["rescue=nologreplay"])
        case .ntfs: ("ntfs3", [])
        // vfat is read by `FATVolume`, not the kernel (decision 0020).
        case .vfat, .swap, .lvm, .unknown: nil
        }
    }

    /// Bytes `probe` needs from the start of the file system.
    public static let probeLength = 68 * 1024

    /// Recognises the superblocks of the kinds above in the first `probeLength` bytes.
    public static func probe(_ head: [UInt8]) -> FileSystemKind {
        func has(_ text: String, at offset: Int) -> Bool {
            let bytes = Array(text.utf8)
            return head.count >= offset + bytes.count && Array(head[offset..<offset + bytes.count]) == bytes
        }
        func word(_ offset: Int) -> UInt32 {
            guard head.count >= offset + 4 else { return 0 }
            return (0..<4).reversed().reduce(0) { $0 << 8 | UInt32(head[offset + $1]) }
        }
        if has("_BHRfS_M", at: 0x10040) { return .btrfs }
        if has("XFSB", at: 0) { return .xfs }
        if head.count >= 1024 + 0x60, head[1024 + 0x38] == 0x53, head[1024 + 0x39] == 0xEF {
            let compat = word(1024 + 0x5C), incompat = word(1024 + 0x60)
            if incompat & 0x2C0 != 0 { return .ext4 }  // extents, 64bit, flex_bg
            return compat & 0x4 != 0 ? .ext3 : .ext2
        }
        if has("NTFS    ", at: 3) { return .ntfs }
        if head.count >= 512, head[510] == 0x55, head[511] == 0xAA,
           has("FAT12   ", at: 54) || has("FAT16   ", at: 54) || has("FAT32   ", at: 82) {
            return .vfat
        }
        if has("SWAPSPACE2", at: 4086) || has("SWAP-SPACE", at: 4086) { return .swap }
        if has("LABELONE", at: 512) { return .lvm }
        return .unknown
    }
}
