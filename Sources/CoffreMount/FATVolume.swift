import CoffreCore
import Foundation
import Synchronization

/// A read-only reader of a FAT12/16/32 file system (vfat: long names included), over a
/// function that reads its bytes. Coffre reads vfat partitions (EFI system partitions, boot
/// partitions) itself: these hosts' kernels may lack the vfat driver (decision 0020).
///
/// Times are the entries' last-write times read as UTC (FAT stores local time without a zone,
/// as Linux reads it with tz=UTC). Files show 0644 (0444 when read-only), folders 0755, owned
/// by root, as the kernel driver shows them by default.
final class FATVolume: Sendable {
    struct Entry: Sendable, Equatable {
        var name: String
        var isDirectory: Bool
        var firstCluster: UInt32
        var size: Int64
        var readOnly: Bool
        var modified: Date
    }

    enum Kind: Sendable { case fat12, fat16, fat32 }

    let kind: Kind
    private let read: @Sendable (Int64, Int) throws -> [UInt8]
    private let bytesPerSector: Int
    private let clusterSize: Int
    private let fatOffset: Int64
    private let rootOffset: Int64
    private let rootEntries: Int
    private let rootCluster: UInt32
    private let dataOffset: Int64
    private let clusterCount: UInt32
    private let directories = Mutex<[UInt32: [Entry]]>([:])
    private let fat = Mutex<[Int64: [UInt8]]>([:])

    /// Reads the boot sector; throws when it is not a FAT file system.
    init(size: Int64, read: @escaping @Sendable (Int64, Int) throws -> [UInt8]) throws {
        self.read = read
        let boot = try read(0, 512)
        func u16(_ o: Int) -> Int { Int(boot[o]) | Int(boot[o + 1]) << 8 }
        func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
        guard boot.count == 512, boot[510] == 0x55, boot[511] == 0xAA else { throw Self.invalid("no boot sector signature") }
        bytesPerSector = u16(11)
        let sectorsPerCluster = Int(boot[13])
        let reserved = u16(14), fats = Int(boot[16]), rootEntries = u16(17)
        let sectors = u16(19) != 0 ? u16(19) : u32(32)
        let fatSectors = u16(22) != 0 ? u16(22) : u32(36)
        guard [512, 1024, 2048, 4096].contains(bytesPerSector), sectorsPerCluster > 0, sectorsPerCluster.nonzeroBitCount == 1,
              reserved > 0, fats > 0, fatSectors > 0, Int64(sectors) * Int64(bytesPerSector) <= size
        else { throw Self.invalid("boot sector values out of range") }
        clusterSize = bytesPerSector * sectorsPerCluster
        let rootSectors = (rootEntries * 32 + bytesPerSector - 1) / bytesPerSector
        let firstData = reserved + fats * fatSectors + rootSectors
        guard firstData < sectors else { throw Self.invalid("no data area") }
        let clusters = (sectors - firstData) / sectorsPerCluster
        kind = clusters < 4085 ? .fat12 : clusters < 65525 ? .fat16 : .fat32
        self.rootEntries = rootEntries
        fatOffset = Int64(reserved) * Int64(bytesPerSector)
        rootOffset = Int64(reserved + fats * fatSectors) * Int64(bytesPerSector)
        dataOffset = Int64(firstData) * Int64(bytesPerSector)
        clusterCount = UInt32(clusters)
        rootCluster = kind == .fat32 ? UInt32(u32(44)) : 0
        if kind == .fat32, rootCluster < 2 { throw Self.invalid("FAT32 root cluster \(rootCluster)") }
        guard Int64(fatSectors) * Int64(bytesPerSector) * 8 >= Int64(clusters + 2) * (kind == .fat12 ? 12 : kind == .fat16 ? 16 : 32) else {
            throw Self.invalid("FAT too small for its clusters")
        }
    }

    private static func invalid(_ detail: String) -> CoffreError {
        CoffreError(.fileSystemNotMounted, "Not a FAT file system: \(detail)")
    }

    // MARK: Paths

    /// The entry at `path` ("/" is the root, a folder with cluster 0); nil when there is none.
    /// Names compare case-insensitively, as FAT does.
    func entry(at path: String) throws -> Entry? {
        var current = Entry(name: "/", isDirectory: true, firstCluster: rootCluster, size: 0, readOnly: false,
                            modified: Date(timeIntervalSince1970: 0))
        for component in path.split(separator: "/") where component != "." {
            guard current.isDirectory else { return nil }
            let name = component.lowercased()
            guard let next = try list(current).first(where: { $0.name.lowercased() == name }) else { return nil }
            current = next
        }
        return current
    }

    /// The entries of a folder, without `.` and `..`, in the order they are stored.
    func list(_ directory: Entry) throws -> [Entry] {
        let key = directory.firstCluster
        if let cached = directories.withLock({ $0[key] }) { return cached }
        let bytes: [UInt8]
        // FAT12/16 keep the root in a fixed area (cluster 0); FAT32's is a chain like any folder.
        bytes = key == 0 ? try read(rootOffset, rootEntries * 32) : try chainBytes(key, limit: 1 << 24)
        let entries = Self.parse(directory: bytes)
        directories.withLock { $0[key] = entries }
        return entries
    }

    /// Reads up to `count` bytes of a file from `offset`.
    func read(_ file: Entry, at offset: Int64, count: Int) throws -> [UInt8] {
        guard offset < file.size, count > 0 else { return [] }
        let count = Int(min(Int64(count), file.size - offset))
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var index = Int(offset / Int64(clusterSize))
        var within = Int(offset % Int64(clusterSize))
        var cluster = try clusterAt(index, from: file.firstCluster)
        while out.count < count {
            guard let current = cluster else { throw Self.damaged("the cluster chain ends before the file's size") }
            let take = min(clusterSize - within, count - out.count)
            out += try read(dataOffset + Int64(current - 2) * Int64(clusterSize) + Int64(within), take)
            within = 0
            index += 1
            if out.count < count { cluster = try next(current) }
        }
        return out
    }

    // MARK: Clusters

    private static func damaged(_ detail: String) -> CoffreError {
        CoffreError(.fileReadFailed, "The FAT file system is damaged: \(detail)")
    }

    /// The `index`th cluster of the chain starting at `first` (nil past its end).
    private func clusterAt(_ index: Int, from first: UInt32) throws -> UInt32? {
        var cluster: UInt32? = first >= 2 ? first : nil
        var steps = 0
        while steps < index, let current = cluster {
            cluster = try next(current)
            steps += 1
        }
        return cluster
    }

    /// The cluster after `cluster` in its chain, nil at its end.
    private func next(_ cluster: UInt32) throws -> UInt32? {
        guard cluster >= 2, cluster < clusterCount + 2 else { throw Self.damaged("cluster \(cluster) out of range") }
        let value: UInt32
        switch kind {
        case .fat12:
            let offset = Int64(cluster) + Int64(cluster / 2)
            let pair = try fatBytes(at: offset, count: 2)
            let word = UInt32(pair[0]) | UInt32(pair[1]) << 8
            value = cluster & 1 == 0 ? word & 0xFFF : word >> 4
            return value >= 0xFF8 ? nil : try checked(value)
        case .fat16:
            let pair = try fatBytes(at: Int64(cluster) * 2, count: 2)
            value = UInt32(pair[0]) | UInt32(pair[1]) << 8
            return value >= 0xFFF8 ? nil : try checked(value)
        case .fat32:
            let quad = try fatBytes(at: Int64(cluster) * 4, count: 4)
            value = (UInt32(quad[0]) | UInt32(quad[1]) << 8 | UInt32(quad[2]) << 16 | UInt32(quad[3]) << 24) & 0x0FFF_FFFF
            return value >= 0x0FFF_FFF8 ? nil : try checked(value)
        }
    }

    private func checked(_ value: UInt32) throws -> UInt32 {
        guard value >= 2, value < clusterCount + 2 else { throw Self.damaged("a chain links to cluster \(value)") }
        return value
    }

    /// Bytes of the first FAT, read and kept 64 KiB at a time.
    private func fatBytes(at offset: Int64, count: Int) throws -> [UInt8] {
        let page: Int64 = 64 << 10
        var out: [UInt8] = []
        for position in offset..<offset + Int64(count) {
            let base = position / page * page
            let bytes = try fat.withLock { cache in
                if let bytes = cache[base] { return bytes }
                let bytes = try read(fatOffset + base, Int(page))
                if cache.count > 256 { cache.removeAll() }
                cache[base] = bytes
                return bytes
            }
            let i = Int(position - base)
            guard i < bytes.count else { throw Self.damaged("the FAT ends early") }
            out.append(bytes[i])
        }
        return out
    }

    private func chainBytes(_ first: UInt32, limit: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        var cluster: UInt32? = first
        while let current = cluster, out.count < limit {
            guard current >= 2, current < clusterCount + 2 else { throw Self.damaged("cluster \(current) out of range") }
            out += try read(dataOffset + Int64(current - 2) * Int64(clusterSize), clusterSize)
            cluster = try next(current)
        }
        return out
    }

    // MARK: Directory entries

    static func parse(directory bytes: [UInt8]) -> [Entry] {
        var entries: [Entry] = []
        var long: [Int: [UInt16]] = [:]
        var longChecksum: UInt8?
        for offset in stride(from: 0, to: bytes.count - 31, by: 32) {
            let e = bytes[offset..<offset + 32]
            let first = e[offset]
            if first == 0 { break }
            if first == 0xE5 { long = [:]; continue }
            let attributes = e[offset + 11]
            if attributes & 0x3F == 0x0F {
                let sequence = Int(first & 0x1F)
                if first & 0x40 != 0 { long = [:] }
                longChecksum = e[offset + 13]
                var units: [UInt16] = []
                for range in [1..<11, 14..<26, 28..<32] {
                    for i in stride(from: range.lowerBound, to: range.upperBound, by: 2) {
                        units.append(UInt16(e[offset + i]) | UInt16(e[offset + i + 1]) << 8)
                    }
                }
                long[sequence] = units
                continue
            }
            defer { long = [:] }
            if attributes & 0x08 != 0 { continue }  // volume label
            let short = Array(e[offset..<offset + 11])
            var name = shortName(short, flags: e[offset + 12])
            if name == "." || name == ".." { continue }
            if !long.isEmpty, longChecksum == checksum(short), Set(long.keys) == Set(1...long.count) {
                let units = (1...long.count).flatMap { long[$0]! }.prefix { $0 != 0 && $0 != 0xFFFF }
                name = String(decoding: Array(units), as: UTF16.self)
            }
            func u16(_ o: Int) -> UInt16 { UInt16(e[offset + o]) | UInt16(e[offset + o + 1]) << 8 }
            let cluster = UInt32(u16(20)) << 16 | UInt32(u16(26))
            let size = Int64(u16(28)) | Int64(u16(30)) << 16
            entries.append(Entry(name: name, isDirectory: attributes & 0x10 != 0, firstCluster: cluster,
                                 size: attributes & 0x10 != 0 ? 0 : size, readOnly: attributes & 0x01 != 0,
                                 modified: date(date: u16(24), time: u16(22))))
        }
        return entries
    }

    /// An 8.3 name; flags 0x08 and 0x10 (set by Windows NT and Linux) lower the base and the extension.
    private static func shortName(_ raw: [UInt8], flags: UInt8) -> String {
        var bytes = raw
        if bytes[0] == 0x05 { bytes[0] = 0xE5 }
        func part(_ slice: ArraySlice<UInt8>, lower: Bool) -> String {
            let text = String(decoding: slice.reversed().drop { $0 == 0x20 }.reversed(), as: UTF8.self)
            return lower ? text.lowercased() : text
        }
        let base = part(bytes[0..<8], lower: flags & 0x08 != 0)
        let ext = part(bytes[8..<11], lower: flags & 0x10 != 0)
        return ext.isEmpty ? base : base + "." + ext
    }

    private static func checksum(_ short: [UInt8]) -> UInt8 {
        short.reduce(UInt8(0)) { sum, byte in ((sum & 1) << 7 | sum >> 1) &+ byte }
    }

    private static func date(date: UInt16, time: UInt16) -> Date {
        var components = DateComponents()
        components.timeZone = TimeZone(identifier: "UTC")
        components.year = 1980 + Int(date >> 9)
        components.month = max(1, Int(date >> 5 & 0xF))
        components.day = max(1, Int(date & 0x1F))
        components.hour = Int(time >> 11)
        components.minute = Int(time >> 5 & 0x3F)
        components.second = Int(time & 0x1F) * 2
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(from: components) ?? Date(timeIntervalSince1970: 315_532_800)
    }
}

/// A FAT file system's files, served by a `FuseExport` at the partition's folder of a mount.
struct FATTree: FuseTree {
    let volume: FATVolume

    func node(_ path: String) throws -> FuseNode? {
        guard let entry = try volume.entry(at: path) else { return nil }
        if path == "/" { return FuseNode(kind: .directory, mode: 0o755) }
        // The handle carries what a read needs: the first cluster and the size (under 4 GiB on FAT).
        return FuseNode(kind: entry.isDirectory ? .directory : .file, size: entry.size,
                        mode: entry.isDirectory ? 0o755 : entry.readOnly ? 0o444 : 0o644, modified: entry.modified,
                        handle: UInt64(entry.firstCluster) << 32 | UInt64(entry.size))
    }

    func children(_ path: String) throws -> [String] {
        guard let entry = try volume.entry(at: path), entry.isDirectory else { return [] }
        return try volume.list(entry).map(\.name)
    }

    func read(_ handle: UInt64, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        let file = FATVolume.Entry(name: "", isDirectory: false, firstCluster: UInt32(handle >> 32),
                                   size: Int64(handle & 0xFFFF_FFFF), readOnly: true, modified: Date())
        let bytes = try volume.read(file, at: offset, count: buffer.count)
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
        return bytes.count
    }
}
