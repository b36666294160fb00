import CoffreCore
import CoffreSystem
@testable import CoffreStorage
import CoffreTesting
import Foundation
import Testing

/// qcow2 restores checked by QEMU's own tools: `qemu-img check` (refcounts, leaks, metadata)
/// and `qemu-img compare` against the raw restore of the same point.
@Suite(.enabled(if: QemuImg.enabled, "qemu-img missing: apt-get install -y qemu-utils (set COFFRE_CI to make this a failure)"))
struct QCOW2Tests {
    /// Blocks smaller than, equal to and larger than qcow2's 64 KiB clusters.
    @Test(arguments: [16 << 10, 64 << 10, 4 << 20])
    func restoredImageReadsLikeTheRawRestore(blockSize: Int) async throws {
        let t = try TestVault(blockSize: blockSize)
        var g = SeededGenerator(seed: 11)
        // 5 MiB + 1.5 KiB: text, a zero stretch, random, a lone byte inside a mostly-zero
        // cluster, and a short last block.
        var bytes = [UInt8](repeating: 0, count: (5 << 20) + 1536)
        let text = Array("coffre qcow2 ".utf8)
        for i in 0..<(1 << 20) { bytes[i] = text[i % text.count] }
        bytes.replaceSubrange((2 << 20)..<(3 << 20), with: g.bytes(1 << 20))
        bytes[(3 << 20) + (40 << 10) + 7] = 0x5A
        bytes.replaceSubrange((bytes.count - 1000)..<bytes.count, with: g.bytes(1000))
        let point = try await t.backup("vm", ["disk0.raw": bytes])

        let raw = try await t.vault.restore(point: point.id, to: t.folder + "/raw")
        let qcow = try await t.vault.restore(point: point.id, to: t.folder + "/qcow2", format: .qcow2)
        #expect(qcow == [t.folder + "/qcow2/disk0.qcow2"])
        try QemuImg.expectValid(qcow[0])
        #expect(try QemuImg.virtualSize(qcow[0]) == Int64(bytes.count))
        #expect(try QemuImg.run(["compare", "-q", "-f", "raw", "-F", "qcow2", raw[0], qcow[0]]).status == 0)
        // Zero blocks stay unallocated: 2 MiB of zeros are not in the image (a 4 MiB block
        // holding any data is stored, and restored, whole).
        let length = try #require(FileIO.linkStatus(qcow[0])?.size)
        if blockSize <= 1 << 20 { #expect(length < Int64(bytes.count) - (1 << 20)) }
        #expect(try FileIO.list(t.folder + "/qcow2") == ["disk0.qcow2"])  // no partial left over
    }

    /// A sparse 1.5 GiB disk: three L2 tables (each maps 512 MiB), one of them for a single
    /// cluster at the very end; the image holds the data only.
    @Test func sparseDiskBeyondOneL2Table() async throws {
        let t = try TestVault(blockSize: 64 << 10)
        let source = t.folder + "/big.raw"
        let size: Int64 = 3 << 29
        let fd = try FileIO.open(source, [.readWrite, .create])
        defer { FileIO.close(fd) }
        try FileIO.truncate(fd, to: size, path: source)
        var g = SeededGenerator(seed: 12)
        for offset in [Int64(0), 700 << 20, size - (64 << 10)] {
            try g.bytes(64 << 10).withUnsafeBytes { try FileIO.pwrite(fd, $0, at: offset, path: source) }
        }
        let point = try await t.vault.backup(item: "vm", disks: [try RawFileDevice(path: source)])
        let qcow = try await t.vault.restore(point: point.id, to: t.folder + "/r", format: .qcow2)
        #expect(qcow == [t.folder + "/r/big.qcow2"])
        try QemuImg.expectValid(qcow[0])
        #expect(try QemuImg.virtualSize(qcow[0]) == size)
        #expect(try QemuImg.run(["compare", "-q", "-f", "raw", "-F", "qcow2", source, qcow[0]]).status == 0)
        #expect(try #require(FileIO.linkStatus(qcow[0])?.size) < 2 << 20)
    }

    @Test func qemuWritesIntoTheRestoredImage() async throws {
        // The image is QEMU's to use afterwards: a write through qemu-io keeps it consistent.
        let t = try TestVault(blockSize: 64 << 10)
        var g = SeededGenerator(seed: 13)
        let point = try await t.backup("vm", ["vda": g.bytes(1 << 20) + [UInt8](repeating: 0, count: 1 << 20)])
        let qcow = try await t.vault.restore(point: point.id, to: t.folder + "/r", format: .qcow2)
        #expect(qcow == [t.folder + "/r/vda.qcow2"])
        let written = try QemuImg.run(["-f", "qcow2", "-c", "write -P 0x77 1536k 128k", qcow[0]], tool: "/usr/bin/qemu-io")
        #expect(written.status == 0, "\(written.output)")
        try QemuImg.expectValid(qcow[0])
        let read = try QemuImg.run(["-f", "qcow2", "-c", "read -P 0x77 1536k 128k", qcow[0]], tool: "/usr/bin/qemu-io")
        #expect(read.status == 0 && !read.output.contains("Pattern verification failed"), "\(read.output)")
    }
}

@Suite struct QCOW2LayoutTests {
    @Test func sizesNotInSectorsAreRefusedBeforeAnythingIsWritten() async throws {
        let t = try TestVault()
        let point = try await t.backup("vm", ["d": [UInt8](repeating: 1, count: 1000)])
        await #expect(throws: CoffreError.self) {
            try await t.vault.restore(point: point.id, to: t.folder + "/r", format: .qcow2)
        }
        #expect(try FileIO.list(t.folder + "/r").isEmpty)
        #expect(try await t.restore(point.id)["d"]?.count == 1000)  // raw still works
    }

    @Test(arguments: [Int64(1), 100, 32_765, 32_766, 32_767, 32_768, 65_533, 65_534, 10_000_000])
    func refcountBlocksCoverThemselves(clusters: Int64) {
        let (table, blocks) = QCOW2Writer.Layout.refcountClusters(before: clusters)
        let perBlock = Int64(QCOW2Writer.refcountsPerBlock)
        let total = clusters + table + blocks
        #expect(blocks * perBlock >= total)
        #expect((blocks - 1) * perBlock < total)  // no spare block
        #expect(table * Int64(QCOW2Writer.clusterSize) >= blocks * 8)
    }

    @Test func fileNames() throws {
        #expect(DiskFormat.raw.fileName(forDisk: "disk0.raw") == "disk0.raw")
        #expect(DiskFormat.qcow2.fileName(forDisk: "disk0.raw") == "disk0.qcow2")
        #expect(DiskFormat.qcow2.fileName(forDisk: "data.img") == "data.qcow2")
        #expect(DiskFormat.qcow2.fileName(forDisk: "vda") == "vda.qcow2")
        #expect(DiskFormat.qcow2.fileName(forDisk: "os.qcow2") == "os.qcow2")
        #expect(DiskFormat.qcow2.fileName(forDisk: ".raw") == ".raw.qcow2")
        #expect(throws: CoffreError.self) { try DiskFormat(parsing: "vmdk") }
        #expect(try DiskFormat(parsing: "QCOW2") == .qcow2)
    }
}

/// QEMU's image tool, the independent judge of the images written here.
enum QemuImg {
    static let available = FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-img")
    /// In CI (`COFFRE_CI` set) a missing qemu-img fails the tests instead of skipping them.
    static let enabled = available || ProcessInfo.processInfo.environment["COFFRE_CI"] != nil

    static func run(_ arguments: [String], tool: String = "/usr/bin/qemu-img") throws -> (status: Int32, output: String) {
        try runTool(tool, arguments)
    }

    /// `qemu-img check`: exit 0 means no corruption and no leaked cluster.
    static func expectValid(_ path: String) throws {
        let check = try run(["check", "-f", "qcow2", path])
        #expect(check.status == 0 && check.output.contains("No errors were found"), "\(check.output)")
    }

    static func virtualSize(_ path: String) throws -> Int64? {
        let info = try run(["info", "-f", "qcow2", "--output=json", path])
        let json = try JSONSerialization.jsonObject(with: Data(info.output.utf8)) as? [String: Any]
        return (json?["virtual-size"] as? NSNumber)?.int64Value
    }
}
