import CoffreCore
@testable import CoffreNBD
import CoffreSystem
import Foundation
import Synchronization
import Testing

/// Disks in memory as a point's reader; reads of `damaged` ranges fail as a damaged block does.
final class MemoryPointDisks: PointDisks, @unchecked Sendable {
    let pointID = "rp-memory"
    let contents: [[UInt8]]
    let names: [String]
    let damaged = Mutex<Range<Int64>?>(nil)
    let reads = Atomic(0)

    init(_ disks: [(String, [UInt8])]) {
        names = disks.map(\.0)
        contents = disks.map(\.1)
    }

    var readableDisks: [ReadableDisk] { zip(names, contents).map { ReadableDisk(name: $0, size: Int64($1.count)) } }

    func read(disk: Int, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        reads.add(1, ordering: .relaxed)
        if let bad = damaged.withLock({ $0 }), bad.overlaps(offset..<offset + Int64(buffer.count)) {
            throw CoffreError(.chunkDamaged, "block at \(bad.lowerBound) failed verification (test)")
        }
        let bytes = contents[disk]
        guard offset < Int64(bytes.count) else { return 0 }
        let n = min(buffer.count, bytes.count - Int(offset))
        bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[Int(offset)..<Int(offset) + n])) }
        return n
    }

    func close() {}
}

/// Coffre's read-only NBD server, read by Coffre's client and by QEMU's own tools.
@Suite(.serialized) struct NBDServerTests {
    static func random(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
    }

    let directory: TestDirectory
    let disks: MemoryPointDisks

    init() throws {
        directory = try TestDirectory()
        disks = MemoryPointDisks([("os.img", Self.random(3 << 20 + 4096, seed: 1)), ("data.img", Self.random(1 << 20, seed: 2))])
    }

    @Test func coffresClientReadsEveryExport() throws {
        let server = try NBDServer(disks: disks, socketPath: directory.path("nbd.sock"))
        defer { server.stop() }
        for (index, name) in ["os.img", "data.img"].enumerated() {
            let device = try NBDDevice(endpoint: .unix(path: server.socketPath), export: name, extents: .everything)
            defer { device.close() }
            #expect(device.size == Int64(disks.contents[index].count))
            var bytes = [UInt8](repeating: 0, count: disks.contents[index].count)
            try bytes.withUnsafeMutableBytes { try device.read(into: $0, at: 0) }
            #expect(bytes == disks.contents[index])
        }
        // The default export is the first disk; an unknown one is refused by name.
        let first = try NBDDevice(endpoint: .unix(path: server.socketPath), export: "", extents: .everything)
        #expect(first.size == Int64(disks.contents[0].count))
        first.close()
        #expect(throws: CoffreError.self) { try NBDDevice(endpoint: .unix(path: server.socketPath), export: "nope", extents: .everything) }
    }

    @Test(.enabled(if: QemuTools.enabled, "\(QemuTools.installHint) (set COFFRE_CI to make this a failure)"))
    func qemuReadsTheExportsAndCannotWrite() throws {
        let server = try NBDServer(disks: disks, socketPath: directory.path("nbd.sock"))
        defer { server.stop() }
        let url = "nbd+unix:///os.img?socket=\(server.socketPath)"
        let info = try QemuTools.run("qemu-img", ["info", "--output=json", url], in: directory)
        #expect(info.contains("\"virtual-size\": \(disks.contents[0].count)"))
        try QemuTools.run("qemu-img", ["convert", "-f", "raw", "-O", "raw", url, directory.path("copy.raw")], in: directory)
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: directory.path("copy.raw")))) == disks.contents[0])
        let list = try QemuTools.run("qemu-nbd", ["--list", "--socket=\(server.socketPath)"], in: directory)
        #expect(list.contains("os.img") && list.contains("data.img"))
        // QEMU sees a read-only export: a write is refused and nothing changes.
        #expect(throws: (any Error).self) {
            try QemuTools.run("qemu-io", ["-f", "raw", "-c", "write -P 0xab 0 4k", url], in: directory)
        }
        // A damaged block is an I/O error for QEMU, never other bytes.
        disks.damaged.withLock { $0 = (1 << 20)..<(1 << 20) + 1 }
        #expect(throws: (any Error).self) {
            try QemuTools.run("qemu-img", ["convert", "-f", "raw", "-O", "raw", url, directory.path("bad.raw")], in: directory)
        }
        #expect(server.readFailure?.code == .chunkDamaged)
        disks.damaged.withLock { $0 = nil }
        // Several clients at once.
        try QemuTools.run("qemu-img", ["compare", "-f", "raw", "-F", "raw", url, directory.path("copy.raw")], in: directory)
    }

    @Test func stopEndsConnectionsAndRemovesTheSocket() throws {
        let server = try NBDServer(disks: disks, socketPath: directory.path("nbd.sock"))
        let device = try NBDDevice(endpoint: .unix(path: server.socketPath), export: "os.img", extents: .everything,
                                   maxConnections: 1, connection: .init(timeout: .seconds(5)))
        var bytes = [UInt8](repeating: 0, count: 4096)
        try bytes.withUnsafeMutableBytes { try device.read(into: $0, at: 0) }
        server.stop()
        #expect(!FileManager.default.fileExists(atPath: server.socketPath))
        #expect(throws: CoffreError.self) { try bytes.withUnsafeMutableBytes { try device.read(into: $0, at: 8192) } }
        device.close()
    }
}
