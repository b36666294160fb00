import CoffreCore
@testable import CoffreMount
import Foundation
import Testing

/// Coffre's FAT reader against images made by mkfs.vfat and filled by mtools.
@Suite(.enabled(if: ImageTools.has("mkfs.vfat", "mcopy"), "apt-get install -y dosfstools mtools"))
struct FATVolumeTests {
    func volume(_ path: String) throws -> FATVolume {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        let size = Int64(try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int)
        return try FATVolume(size: size) { offset, count in
            let fd = handle.fileDescriptor
            var bytes = [UInt8](repeating: 0, count: count)
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
            return Array(bytes[0..<max(0, n)])
        }
    }

    func contents(_ volume: FATVolume, _ path: String) throws -> Data {
        let entry = try #require(try volume.entry(at: path))
        return Data(try volume.read(entry, at: 0, count: Int(entry.size) + 10))
    }

    @Test(arguments: [("12", 4), ("16", 32), ("32", 64)])
    func namesFoldersAndContentsReadBack(fat: String, megabytes: Int) throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let image = folder + "/fat.img", source = folder + "/src"
        var rng = SystemRandomNumberGenerator()
        let big = Data((0..<(700 << 10)).map { _ in UInt8.random(in: 0...255, using: &rng) })
        try FileManager.default.createDirectory(atPath: source + "/Sub Dir/deeper", withIntermediateDirectories: true)
        try Data("short\n".utf8).write(to: URL(fileURLWithPath: source + "/README.TXT"))
        try Data("été\n".utf8).write(to: URL(fileURLWithPath: source + "/Sub Dir/déjà vu.txt"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: source + "/Sub Dir/deeper/a.b.c.longextension"))
        try big.write(to: URL(fileURLWithPath: source + "/gap.bin"))
        try big.prefix(5000).write(to: URL(fileURLWithPath: source + "/spacer.bin"))
        let sectorFlags = fat == "32" ? "-S 512 -s 1" : ""
        // spacer, gap, then spacer deleted and big copied again: its chain is fragmented.
        try shell("""
            cd \(source) && truncate -s \(megabytes)M \(image) && mkfs.vfat -F \(fat) \(sectorFlags) \(image) >/dev/null
            mcopy -i \(image) README.TXT spacer.bin ::/ && mcopy -s -i \(image) 'Sub Dir' ::/
            mcopy -i \(image) gap.bin ::/first.bin && mdel -i \(image) ::/spacer.bin && mcopy -i \(image) gap.bin ::/
            """)
        let fs = try volume(image)
        #expect("\(fs.kind)" == "fat\(fat)")
        let root = try #require(try fs.entry(at: "/"))
        #expect(Set(try fs.list(root).map(\.name)) == ["README.TXT", "Sub Dir", "first.bin", "gap.bin"])
        #expect(try contents(fs, "/README.TXT") == Data("short\n".utf8))
        #expect(try contents(fs, "/readme.txt") == Data("short\n".utf8))  // FAT names ignore case
        #expect(try contents(fs, "/Sub Dir/déjà vu.txt") == Data("été\n".utf8))
        #expect(try contents(fs, "/Sub Dir/deeper/a.b.c.longextension") == Data("x".utf8))
        #expect(try contents(fs, "/gap.bin") == big)
        #expect(try contents(fs, "/first.bin") == big)
        let gap = try #require(try fs.entry(at: "/gap.bin"))
        #expect(Data(try fs.read(gap, at: 123_457, count: 70_000)) == big[123_457..<193_457])
        #expect(try fs.entry(at: "/Sub Dir")?.isDirectory == true)
        #expect(try fs.entry(at: "/missing") == nil)
        #expect(try fs.entry(at: "/README.TXT/x") == nil)
        // mtools stamps files with the current time.
        let age = Date().timeIntervalSince(try #require(try fs.entry(at: "/README.TXT")).modified)
        #expect(abs(age) < 3600 * 24)
    }

    @Test func notAFATFileSystemIsRefused() throws {
        let bytes = [UInt8](repeating: 0, count: 1 << 20)
        #expect(throws: CoffreError.self) { try FATVolume(size: Int64(bytes.count)) { o, c in Array(bytes[Int(o)..<Int(o) + c]) } }
    }
}

@Suite(.enabled(if: ImageTools.has("mkfs.ext4", "mkfs.xfs", "mkfs.btrfs", "mkfs.vfat"), "apt-get install -y e2fsprogs xfsprogs btrfs-progs dosfstools"))
struct FileSystemProbeTests {
    @Test func superblocksAreRecognised() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cases: [(String, String, FileSystemKind)] = [
            ("ext4", "truncate -s 16M F && mkfs.ext4 -q F", .ext4),
            ("ext3", "truncate -s 16M F && mkfs.ext3 -q F", .ext3),
            ("ext2", "truncate -s 16M F && mkfs.ext2 -q F", .ext2),
            ("xfs", "truncate -s 320M F && mkfs.xfs -q F", .xfs),
            ("btrfs", "truncate -s 128M F && mkfs.btrfs -q F", .btrfs),
            ("vfat", "truncate -s 16M F && mkfs.vfat F >/dev/null", .vfat),
            ("swap", "truncate -s 16M F && mkswap F >/dev/null", .swap),
            ("zeros", "truncate -s 16M F", .unknown),
        ]
        for (name, script, kind) in cases {
            let file = folder + "/" + name
            try shell(script.replacingOccurrences(of: "F", with: file))
            let head = try FileHandle(forReadingFrom: URL(fileURLWithPath: file)).read(upToCount: FileSystemKind.probeLength) ?? Data()
            #expect(FileSystemKind.probe(Array(head)) == kind, "\(name)")
            try FileManager.default.removeItem(atPath: file)
        }
    }
}
