import CoffreCore
import CoffreSystem
import Synchronization

/// Writes a fresh qcow2 image (version 3, no backing file, 16-bit refcounts) in one pass, as
/// a restore produces it: data arrives in any order from several threads, only once per
/// byte, and only where the disk holds data.
///
/// Layout: the header's cluster first, then data clusters in the order writes claim them,
/// then, at `finish`, the L2 tables, the L1 table, the refcount table and its blocks, and
/// last the header. Every cluster of the file is referenced exactly once (refcount 1, the
/// "copied" flag set), so `qemu-img check` finds no leak and QEMU writes in place. Until
/// `finish` the file is not an image at all (its header is zeros), which suits the restore's
/// write-to-partial-then-rename.
///
/// The L2 tables live in memory until `finish`: 8 bytes per allocated 64 KiB cluster, so
/// 128 MiB for a fully allocated 1 TiB disk, nothing for holes.
final class QCOW2Writer: Sendable {
    static let clusterBits = 16
    static let clusterSize = 1 << clusterBits
    /// 8-byte entries per L2 table: one table maps 512 MiB.
    static let l2Entries = clusterSize / 8
    /// 16-bit refcounts per refcount block.
    static let refcountsPerBlock = clusterSize / 2
    /// L1 and L2 entries' "refcount is exactly one" flag.
    static let copied: UInt64 = 1 << 63

    let path: String
    let size: Int64
    private let file: Int32
    private let direct: Int32
    var hasDirect: Bool { direct >= 0 }
    private let state = Mutex(Allocation())

    private struct Allocation {
        /// The next free cluster of the file; cluster 0 is the header's.
        var nextCluster: Int64 = 1
        /// L2 tables by L1 index: host offset (with `copied`) of each guest cluster, 0 if unallocated.
        var tables: [Int: [UInt64]] = [:]
        var finished = false
    }

    /// - Parameters:
    ///   - file: the partial file, open for writing (buffered).
    ///   - direct: the same file opened with O_DIRECT, or -1.
    ///   - size: the disk's virtual size, a multiple of 512 (qcow2 counts in sectors).
    init(file: Int32, direct: Int32, path: String, size: Int64, disk: String) throws {
        try DiskFormat.qcow2.check(disk: disk, size: size)
        self.file = file
        self.direct = direct
        self.path = path
        self.size = size
    }

    /// Writes `bytes` at guest offset `offset`, allocating the clusters it touches that have
    /// none yet, contiguously. A direct write needs `offset` and `bytes.count` aligned to 4 KiB.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64, direct useDirect: Bool) throws {
        guard !bytes.isEmpty else { return }
        let cs = Int64(Self.clusterSize)
        let end = offset + Int64(bytes.count)
        guard offset >= 0, end <= size else {
            throw CoffreError(.ioError, "A write at \(offset)..<\(end) is outside the \(size)-byte disk of \(path)")
        }
        // Host offset of each touched guest cluster.
        let hosts = try state.withLock { s -> [Int64] in
            guard !s.finished else { throw CoffreError(.ioError, "\(path) is already finished") }
            return (offset / cs...(end - 1) / cs).map { cluster in
                let (l1, l2) = (Int(cluster / Int64(Self.l2Entries)), Int(cluster % Int64(Self.l2Entries)))
                if let entry = s.tables[l1]?[l2], entry != 0 { return Int64(entry & ~Self.copied) }
                let host = s.nextCluster * cs
                s.nextCluster += 1
                s.tables[l1, default: [UInt64](repeating: 0, count: Self.l2Entries)][l2] = UInt64(host) | Self.copied
                return host
            }
        }
        // One pwrite per run of host-contiguous clusters; `index` is the cluster holding `position`.
        let fd = useDirect && direct >= 0 ? direct : file
        var position = offset
        var index = 0
        while position < end {
            let host = hosts[index] + position % cs
            var runEnd = min(end, (position / cs + 1) * cs)
            while runEnd < end, hosts[index + 1] == hosts[index] + cs {
                index += 1
                runEnd = min(end, runEnd + cs)
            }
            let range = Int(position - offset)..<Int(runEnd - offset)
            try FileIO.pwrite(fd, UnsafeRawBufferPointer(rebasing: bytes[range]), at: host, path: path)
            position = runEnd
            index += 1
        }
    }

    /// Writes the metadata and then the header. The caller makes the file durable.
    func finish() throws {
        let layout = try state.withLock { s -> Layout in
            guard !s.finished else { throw CoffreError(.ioError, "\(path) is already finished") }
            s.finished = true
            return Layout(size: size, dataEnd: s.nextCluster, tables: s.tables.keys.sorted())
        }
        let tables = state.withLock { $0.tables }
        let cs = Int64(Self.clusterSize)

        for (index, l1) in layout.tableIndexes.enumerated() {
            try writeBigEndian(tables[l1]!, at: (layout.tablesStart + Int64(index)) * cs)
        }
        var l1Table = [UInt64](repeating: 0, count: layout.l1Size)
        for (index, l1) in layout.tableIndexes.enumerated() {
            l1Table[l1] = UInt64((layout.tablesStart + Int64(index)) * cs) | Self.copied
        }
        try writeBigEndian(l1Table, at: layout.l1Start * cs)
        let refcountTable = (0..<layout.refcountBlocks).map { UInt64((layout.refcountBlocksStart + $0) * cs) }
        try writeBigEndian(refcountTable, at: layout.refcountTableStart * cs)
        // Every cluster below the end holds 1; one block at a time.
        for block in 0..<layout.refcountBlocks {
            let first = block * Int64(Self.refcountsPerBlock)
            let count = Int(min(Int64(Self.refcountsPerBlock), layout.totalClusters - first))
            try writeBigEndian([UInt16](repeating: 1, count: count), at: (layout.refcountBlocksStart + block) * cs)
        }
        try header(layout).withUnsafeBytes { try FileIO.pwrite(file, $0, at: 0, path: path) }
    }

    private func header(_ layout: Layout) -> [UInt8] {
        var bytes: [UInt8] = []
        func put<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.bigEndian) { bytes += $0 } }
        let cs = Int64(Self.clusterSize)
        bytes += [0x51, 0x46, 0x49, 0xFB]               // magic "QFI\xfb"
        put(UInt32(3))                                   // version
        put(UInt64(0)); put(UInt32(0))                   // no backing file
        put(UInt32(Self.clusterBits))
        put(UInt64(size))
        put(UInt32(0))                                   // no encryption
        put(UInt32(layout.l1Size)); put(UInt64(layout.l1Start * cs))
        put(UInt64(layout.refcountTableStart * cs)); put(UInt32(layout.refcountTableClusters))
        put(UInt32(0)); put(UInt64(0))                   // no snapshots
        put(UInt64(0)); put(UInt64(0)); put(UInt64(0))  // incompatible, compatible, autoclear features
        put(UInt32(4))                                   // refcount order: 16-bit refcounts
        put(UInt32(104))                                 // header length; the zeros after it end the extensions
        return bytes
    }

    private func writeBigEndian<T: FixedWidthInteger>(_ values: [T], at offset: Int64) throws {
        let encoded = values.map(\.bigEndian)
        try encoded.withUnsafeBytes { try FileIO.pwrite(file, $0, at: offset, path: path) }
    }

    /// Where `finish` puts the metadata, in clusters, after the `dataEnd` clusters written so far.
    struct Layout: Equatable {
        let tableIndexes: [Int]
        let l1Size: Int
        let tablesStart: Int64
        let l1Start: Int64
        let refcountTableStart: Int64
        let refcountTableClusters: Int64
        let refcountBlocksStart: Int64
        let refcountBlocks: Int64
        let totalClusters: Int64

        init(size: Int64, dataEnd: Int64, tables: [Int]) {
            let cs = Int64(QCOW2Writer.clusterSize)
            let guestClusters = (size + cs - 1) / cs
            tableIndexes = tables
            l1Size = Int(max(1, (guestClusters + Int64(QCOW2Writer.l2Entries) - 1) / Int64(QCOW2Writer.l2Entries)))
            tablesStart = dataEnd
            l1Start = tablesStart + Int64(tables.count)
            let l1Clusters = (Int64(l1Size) * 8 + cs - 1) / cs
            refcountTableStart = l1Start + l1Clusters
            // The refcount structures count themselves: grow until the blocks cover everything.
            let (table, blocks) = Self.refcountClusters(before: refcountTableStart)
            refcountTableClusters = table
            refcountBlocksStart = refcountTableStart + table
            refcountBlocks = blocks
            totalClusters = refcountBlocksStart + blocks
        }

        /// The smallest (table clusters, blocks) such that `blocks` blocks cover the `clusters`
        /// before them plus the table and the blocks themselves.
        static func refcountClusters(before clusters: Int64) -> (table: Int64, blocks: Int64) {
            let cs = Int64(QCOW2Writer.clusterSize), perBlock = Int64(QCOW2Writer.refcountsPerBlock)
            var (table, blocks): (Int64, Int64) = (1, 1)
            while true {
                let neededBlocks = (clusters + table + blocks + perBlock - 1) / perBlock
                let neededTable = max(1, (neededBlocks * 8 + cs - 1) / cs)
                if neededBlocks <= blocks, neededTable <= table { return (table, blocks) }
                (table, blocks) = (max(table, neededTable), max(blocks, neededBlocks))
            }
        }
    }
}
