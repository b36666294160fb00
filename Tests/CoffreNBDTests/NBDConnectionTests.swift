import CoffreCore
import CoffreNBD
import Foundation
import Testing

/// A 4 MiB sparse raw image: data at three places, holes elsewhere.
struct RawFixture {
    static let size = 4 << 20
    static let dataRanges: [Range<Int64>] = [0..<(64 << 10), (1 << 20)..<((1 << 20) + (192 << 10)), ((3 << 20) - 4096)..<((3 << 20) + 8192)]
    static let holeProbe: Range<Int64> = (2 << 20)..<((2 << 20) + (512 << 10))

    let directory: TestDirectory
    let image: String
    let expected: [UInt8]

    init() throws {
        directory = try TestDirectory()
        image = directory.path("disk.raw")
        var random = SeededBytes(seed: 42)
        expected = try makeRawImage(at: image, size: Self.size, data: Self.dataRanges.map {
            (offset: Int($0.lowerBound), bytes: random.bytes($0.count))
        })
    }
}

@Suite(.enabled(if: QemuTools.enabled, "qemu-nbd missing: apt-get install -y qemu-utils (set COFFRE_CI to make this a failure)"))
struct NBDConnectionTests {
    @Test func rawExportReadsBackByteForByte() throws {
        let f = try RawFixture()
        try withQemuNBD(image: f.image, format: "raw", export: "vda", in: f.directory) { server in
            let connection = try NBDConnection.connect(to: server.endpoint, export: "vda", metaContexts: [NBDMetaContext.allocation])
            defer { connection.close() }
            #expect(connection.size == Int64(RawFixture.size))
            #expect(connection.isReadOnly)
            #expect(connection.hasStructuredReplies)
            let bytes = try readBytes(connection, at: 0, count: RawFixture.size)
            #expect(firstDifference(bytes, f.expected) == nil)
            // Holes read as zeros (structured OFFSET_HOLE chunks from qemu-nbd).
            let hole = try readBytes(connection, at: RawFixture.holeProbe.lowerBound, count: RawFixture.holeProbe.count)
            #expect(hole.allSatisfy { $0 == 0 })
        }
    }

    @Test func allocationExtentsCoverTheDataAndSkipTheHoles() throws {
        let f = try RawFixture()
        try withQemuNBD(image: f.image, format: "raw", in: f.directory) { server in
            let connection = try NBDConnection.connect(to: server.endpoint, export: "disk", metaContexts: [NBDMetaContext.allocation])
            defer { connection.close() }
            let extents = try connection.blockStatus(context: NBDMetaContext.allocation, range: 0..<connection.size)
            // The extents tile the export.
            #expect(extents.first?.range.lowerBound == 0)
            #expect(extents.last?.range.upperBound == connection.size)
            #expect(zip(extents, extents.dropFirst()).allSatisfy { $0.range.upperBound == $1.range.lowerBound })
            let data = extents.ranges { !$0.isZero }
            for range in RawFixture.dataRanges {
                #expect(data.contains { $0.lowerBound <= range.lowerBound && range.upperBound <= $0.upperBound }, "\(range) not covered by \(data)")
            }
            #expect(!data.contains { $0.overlaps(RawFixture.holeProbe) }, "the hole \(RawFixture.holeProbe) reported as data: \(data)")
            // What is not data reads as zeros.
            var position: Int64 = 0
            for range in data + [connection.size..<connection.size] {
                if position < range.lowerBound {
                    #expect(f.expected[Int(position)..<Int(range.lowerBound)].allSatisfy { $0 == 0 })
                }
                position = range.upperBound
            }
        }
    }

    @Test func blockStatusLoopsWhenTheServerAnswersPiecewise() throws {
        let f = try RawFixture()
        try withQemuNBD(image: f.image, format: "raw", in: f.directory) { server in
            let whole = try NBDConnection.connect(to: server.endpoint, export: "disk", metaContexts: [NBDMetaContext.allocation])
            defer { whole.close() }
            let small = try NBDConnection.connect(
                to: server.endpoint, export: "disk", metaContexts: [NBDMetaContext.allocation],
                configuration: .init(maxBlockStatusLength: 48 << 10))
            defer { small.close() }
            let range: Range<Int64> = 4096..<(Int64(RawFixture.size) - 8192)
            let expected = try whole.blockStatus(context: NBDMetaContext.allocation, range: range)
            #expect(try small.blockStatus(context: NBDMetaContext.allocation, range: range) == expected)
            #expect(expected.first?.range.lowerBound == range.lowerBound)
            #expect(expected.last?.range.upperBound == range.upperBound)
        }
    }

    @Test func readsSplitAndUnalignedMatch() throws {
        let f = try RawFixture()
        try withQemuNBD(image: f.image, format: "raw", in: f.directory) { server in
            let connection = try NBDConnection.connect(
                to: server.endpoint, export: "disk", configuration: .init(maxReadLength: 64 << 10))
            defer { connection.close() }
            for (offset, count) in [(1, 1), (4095, 3), ((1 << 20) - 7, 300_001), (RawFixture.size - 5, 5), (12_345, 0)] {
                let bytes = try readBytes(connection, at: Int64(offset), count: count)
                #expect(bytes == Array(f.expected[offset..<(offset + count)]), "at \(offset) count \(count)")
            }
            let error = #expect(throws: CoffreError.self) { _ = try readBytes(connection, at: Int64(RawFixture.size) - 1, count: 2) }
            #expect(error?.code == .nbdInvalidRequest)
            // An invalid request is refused before sending: the connection stays usable.
            #expect(try readBytes(connection, at: 0, count: 16) == Array(f.expected[0..<16]))
        }
    }

    @Test func qcow2DirtyBitmapListsExactlyTheWritesAfterItWasEnabled() throws {
        let directory = try TestDirectory()
        let image = directory.path("disk.qcow2")
        try QemuTools.run("qemu-img", ["create", "-q", "-f", "qcow2", image, "4M"], in: directory)
        try QemuTools.run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x11 0 1M", image], in: directory)
        try QemuTools.run("qemu-img", ["bitmap", "--add", "--enable", image, "b0"], in: directory)
        // Bitmap granularity is 64 KiB: aligned writes give exact dirty extents.
        let writes: [(pattern: UInt8, range: Range<Int64>)] = [
            (0x55, (192 << 10)..<(256 << 10)),
            (0x22, (1 << 20)..<((1 << 20) + (64 << 10))),
            (0x33, (2 << 20)..<((2 << 20) + (128 << 10))),
        ]
        try QemuTools.run("qemu-io", ["-f", "qcow2"] + writes.flatMap {
            ["-c", "write -P 0x\(String($0.pattern, radix: 16)) \($0.range.lowerBound) \($0.range.count)"]
        } + [image], in: directory)
        var expected = [UInt8](repeating: 0, count: 4 << 20)
        expected.replaceSubrange(0..<(1 << 20), with: repeatElement(0x11, count: 1 << 20))
        for write in writes {
            expected.replaceSubrange(Int(write.range.lowerBound)..<Int(write.range.upperBound), with: repeatElement(write.pattern, count: write.range.count))
        }

        try withQemuNBD(image: image, format: "qcow2", bitmap: "b0", in: directory) { server in
            let context = NBDMetaContext.dirtyBitmap("b0")
            let connection = try NBDConnection.connect(to: server.endpoint, export: "disk", metaContexts: [NBDMetaContext.allocation, context])
            defer { connection.close() }
            let dirty = try connection.blockStatus(context: context, range: 0..<connection.size).ranges { $0.isDirty }
            #expect(dirty == writes.map(\.range))
            for write in writes {
                let bytes = try readBytes(connection, at: write.range.lowerBound, count: write.range.count)
                #expect(bytes.allSatisfy { $0 == write.pattern })
            }
            #expect(firstDifference(try readBytes(connection, at: 0, count: expected.count), expected) == nil)
            // Both maps from the same requests.
            let maps = try connection.blockStatus(contexts: [NBDMetaContext.allocation, context], range: 0..<connection.size)
            #expect(maps[context]?.ranges { $0.isDirty } == dirty)
            let allocated = maps[NBDMetaContext.allocation]?.ranges { !$0.isZero } ?? []
            for range in [0..<(1 << 20)] + writes.map(\.range) {
                #expect(allocated.contains { $0.lowerBound <= range.lowerBound && range.upperBound <= $0.upperBound })
            }
            #expect(!allocated.contains { $0.overlaps((3 << 20)..<(4 << 20)) })
        }
    }

    @Test func unknownExportIsNamedInTheError() throws {
        let f = try RawFixture()
        try withQemuNBD(image: f.image, format: "raw", export: "vda", in: f.directory) { server in
            let error = #expect(throws: CoffreError.self) {
                _ = try NBDConnection.connect(to: server.endpoint, export: "vdz")
            }
            #expect(error?.code == .nbdExportNotFound)
            #expect(error?.message.contains("'vdz'") == true, "\(String(describing: error))")
            // Also when the export name first appears in NBD_OPT_SET_META_CONTEXT.
            let withContext = #expect(throws: CoffreError.self) {
                _ = try NBDConnection.connect(to: server.endpoint, export: "vdz", metaContexts: [NBDMetaContext.allocation])
            }
            #expect(withContext?.code == .nbdExportNotFound)
        }
    }

    @Test func unknownMetaContextIsAClearError() throws {
        let f = try RawFixture()
        try withQemuNBD(image: f.image, format: "raw", in: f.directory) { server in
            let error = #expect(throws: CoffreError.self) {
                _ = try NBDConnection.connect(to: server.endpoint, export: "disk",
                                              metaContexts: [NBDMetaContext.allocation, NBDMetaContext.dirtyBitmap("backup-vda")])
            }
            #expect(error?.code == .nbdMetaContextUnavailable)
            #expect(error?.message.contains("qemu:dirty-bitmap:backup-vda") == true)
            #expect(error?.workaround?.contains("incremental") == true)
        }
    }

    @Test func tcpTransport() throws {
        let f = try RawFixture()
        try withQemuNBD(image: f.image, format: "raw", tcp: true, in: f.directory) { server in
            guard case .tcp(let host, let port) = server.endpoint else { throw TestFailure("not TCP") }
            let connection = try NBDConnection.connect(host: host, port: port, export: "disk", metaContexts: [NBDMetaContext.allocation])
            defer { connection.close() }
            #expect(firstDifference(try readBytes(connection, at: 0, count: RawFixture.size), f.expected) == nil)
            let data = try connection.blockStatus(context: NBDMetaContext.allocation, range: 0..<connection.size).ranges { !$0.isZero }
            #expect(!data.isEmpty)
        }
    }

    @Test func nothingListensIsAConnectError() throws {
        let directory = try TestDirectory()
        let error = #expect(throws: CoffreError.self) {
            _ = try NBDConnection.connect(unixSocket: directory.path("none.sock"), export: "disk")
        }
        #expect(error?.code == .nbdConnectFailed)
        #expect(error?.message.contains("none.sock") == true)
    }

    @Test func serverGoneMidSessionIsAnErrorNotAHang() throws {
        let f = try RawFixture()
        let server = try QemuNBDServer.start(image: f.image, format: "raw", in: f.directory)
        defer { server.stop() }
        let connection = try NBDConnection.connect(to: server.endpoint, export: "disk", configuration: .init(timeout: .seconds(5)))
        defer { connection.close() }
        _ = try readBytes(connection, at: 0, count: 4096)
        server.stop()
        let error = #expect(throws: CoffreError.self) { _ = try readBytes(connection, at: 0, count: 1 << 20) }
        #expect(error?.code == .nbdConnectionLost)
        #expect(!connection.isOpen)
    }
}
