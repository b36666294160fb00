import CoffreSystem
@testable import CoffreMount
import Foundation
import Testing

/// Partition tables made by sfdisk, read back and compared with what sfdisk itself reports.
@Suite(.enabled(if: ImageTools.has("sfdisk"), "sfdisk missing: apt-get install -y fdisk"))
struct PartitionTableTests {
    struct SfdiskTable: Decodable {
        struct Table: Decodable {
            var label: String
            var partitions: [Part]
        }
        struct Part: Decodable {
            var node: String
            var start: Int64
            var size: Int64
            var type: String
        }
        var partitiontable: Table
    }

    func table(of path: String) throws -> PartitionTable? {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        let size = Int64(try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int)
        return try PartitionTable.read(size: size) { offset, count in
            try handle.seek(toOffset: UInt64(offset))
            return Array(try handle.read(upToCount: count) ?? Data())
        }
    }

    /// What sfdisk says, as (number, offset, size) in bytes; the extended container left out.
    func expected(_ path: String) throws -> [(Int, Int64, Int64)] {
        let json = try shell("sfdisk -J \(path)")
        let parsed = try JSONDecoder().decode(SfdiskTable.self, from: Data(json.utf8))
        return parsed.partitiontable.partitions.filter { !["5", "f", "85"].contains($0.type) }.map { part in
            (Int(String(part.node.reversed().prefix(while: \.isNumber).reversed()))!, part.start * 512, part.size * 512)
        }
    }

    @Test func gptPartitionsAreWhereSfdiskPutThem() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let disk = folder + "/gpt.img"
        try shell("truncate -s 64M \(disk) && printf 'label: gpt\\n,8M,L\\n,16M,U\\n,,L\\n' | sfdisk -q \(disk)")
        let table = try #require(try table(of: disk))
        #expect(table.scheme == .gpt)
        #expect(table.partitions.map { [$0.number, Int($0.offset), Int($0.size)] } == (try expected(disk)).map { [$0.0, Int($0.1), Int($0.2)] })
        #expect(table.partitions.map(\.type) == ["0FC63DAF-8483-4772-8E79-3D69D8477DE4", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                                                 "0FC63DAF-8483-4772-8E79-3D69D8477DE4"])
    }

    @Test func mbrPrimaryAndLogicalPartitionsAreNumberedAsLinuxDoes() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let disk = folder + "/mbr.img"
        try shell("truncate -s 64M \(disk) && printf 'label: dos\\n,8M,83\\n,,5\\n,6M,83\\n,6M,c\\n,,83\\n' | sfdisk -q \(disk)")
        let table = try #require(try table(of: disk))
        #expect(table.scheme == .mbr)
        #expect(table.partitions.map(\.number) == [1, 5, 6, 7])
        #expect(table.partitions.map { [$0.number, Int($0.offset), Int($0.size)] } == (try expected(disk)).map { [$0.0, Int($0.1), Int($0.2)] })
        #expect(table.partitions.map(\.type) == ["83", "83", "0c", "83"])
    }

    @Test func aBlankDiskOrAFileSystemOnTheWholeDiskHasNoTable() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try shell("truncate -s 8M \(folder)/blank.img")
        #expect(try table(of: folder + "/blank.img") == nil)
        if ImageTools.has("mkfs.vfat") {
            try shell("truncate -s 8M \(folder)/fat.img && mkfs.vfat \(folder)/fat.img")
            #expect(try table(of: folder + "/fat.img") == nil)
        }
    }

    /// Random tables never yield a range outside the disk, whatever their entries say.
    @Test func damagedTablesStayInsideTheDisk() throws {
        var generator = SystemRandomNumberGenerator()
        let size: Int64 = 1 << 20
        for _ in 0..<500 {
            var disk = (0..<Int(size / 4096)).flatMap { _ in [UInt8](repeating: UInt8.random(in: 0...3, using: &generator), count: 4096) }
            for i in 446..<512 { disk[i] = UInt8.random(in: 0...255, using: &generator) }
            for i in 0..<4 { disk[446 + 16 * i] = [0, 0x80][Int.random(in: 0...1)] }
            disk[510] = 0x55
            disk[511] = 0xAA
            if Bool.random() { disk.replaceSubrange(512..<520, with: Array("EFI PART".utf8)) }
            let table = try PartitionTable.read(size: size) { offset, count in
                Array(disk[Int(offset)..<min(disk.count, Int(offset) + count)])
            }
            for partition in table?.partitions ?? [] {
                #expect(partition.offset > 0 && partition.size > 0 && partition.offset + partition.size <= size)
            }
        }
    }
}

@Suite struct MountTableTests {
    @Test func mountinfoLinesAreParsedWithTheirEscapes() {
        let text = """
            45 27 0:40 / /tmp/a\\040b ro,nosuid - fuse.coffre coffre:rp-1 ro,user_id=0
            46 45 7:0 / /tmp/a\\040b/d/part1 ro,relatime shared:5 - ext4 /dev/loop0 ro,norecovery
            47 27 0:41 / /tmp/a\\040bc rw - tmpfs tmpfs rw
            """
        let entries = MountInfo.parse(text)
        #expect(entries.map(\.mountPoint) == ["/tmp/a b", "/tmp/a b/d/part1", "/tmp/a bc"])
        #expect(entries.map(\.fileSystemType) == ["fuse.coffre", "ext4", "tmpfs"])
        #expect(entries[0].source == "coffre:rp-1")
        // Deepest first, and never a neighbour that merely shares the prefix.
        #expect(MountTable.mounts(atOrBelow: "/tmp/a b", in: entries).map(\.id) == [46, 45])
    }
}
