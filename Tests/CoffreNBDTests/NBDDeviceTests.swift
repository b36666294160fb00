import CoffreCore
import CoffreNBD
import Foundation
import Synchronization
import Testing

@Suite(.enabled(if: QemuTools.enabled, "qemu-nbd missing: apt-get install -y qemu-utils (set COFFRE_CI to make this a failure)"))
struct NBDDeviceTests {
    @Test func eightConcurrentReadersGetTheRightBytes() throws {
        let f = try RawFixture()
        try withQemuNBD(image: f.image, format: "raw", export: "vda", shared: 8, in: f.directory) { server in
            let device = try NBDDevice(endpoint: server.endpoint, export: "vda", maxConnections: 4)
            defer { device.close() }
            #expect(device.name == "vda")
            #expect(device.size == Int64(RawFixture.size))
            let expected = f.expected
            let failures = Mutex<[String]>([])
            let done = DispatchGroup()
            for reader in 0..<8 {
                done.enter()
                Thread {
                    defer { done.leave() }
                    var random = SeededBytes(seed: UInt64(100 + reader))
                    for _ in 0..<40 {
                        let offset = Int(random.next() % UInt64(RawFixture.size))
                        let count = min(RawFixture.size - offset, Int(random.next() % (256 << 10)) + 1)
                        do {
                            let bytes = try readBytes(device, at: Int64(offset), count: count)
                            if let at = firstDifference(bytes, Array(expected[offset..<(offset + count)])) {
                                failures.withLock { $0.append("reader \(reader): \(count) bytes at \(offset) differ at +\(at)") }
                            }
                        } catch {
                            failures.withLock { $0.append("reader \(reader): \(error)") }
                        }
                    }
                }.start()
            }
            done.wait()
            #expect(failures.withLock { $0 } == [])
            #expect((1...4).contains(device.openConnections))
        }
    }

    @Test func poolMakesDoWithOneConnectionWhenTheServerAllowsOne() throws {
        // qemu-nbd's default --shared=1: extra connections wait in the listen backlog until the
        // handshake times out; the pool then keeps using the connection it has.
        let f = try RawFixture()
        try withQemuNBD(image: f.image, format: "raw", shared: 1, in: f.directory) { server in
            let device = try NBDDevice(endpoint: server.endpoint, export: "disk", maxConnections: 3,
                                       connection: .init(timeout: .seconds(1)))
            defer { device.close() }
            let expected = f.expected
            let failures = Mutex<[String]>([])
            let done = DispatchGroup()
            for reader in 0..<3 {
                done.enter()
                Thread {
                    defer { done.leave() }
                    for step in 0..<20 {
                        let offset = (reader * 20 + step) * 4096 % (RawFixture.size - (64 << 10))
                        do {
                            let bytes = try readBytes(device, at: Int64(offset), count: 64 << 10)
                            if bytes != Array(expected[offset..<(offset + (64 << 10))]) {
                                failures.withLock { $0.append("reader \(reader): bytes at \(offset) differ") }
                            }
                        } catch {
                            failures.withLock { $0.append("reader \(reader): \(error)") }
                        }
                    }
                }.start()
            }
            done.wait()
            #expect(failures.withLock { $0 } == [])
            #expect(device.openConnections == 1)
        }
    }

    @Test func allocationDataExtentsAndReadsThroughTheBlockDeviceProtocol() throws {
        let f = try RawFixture()
        try withQemuNBD(image: f.image, format: "raw", in: f.directory) { server in
            let device: any BlockDevice = try NBDDevice(endpoint: server.endpoint, export: "disk", name: "os.img")
            #expect(device.name == "os.img")
            let extents = try device.dataExtents(in: 0..<(device.size + 4096))
            #expect(zip(extents, extents.dropFirst()).allSatisfy { $0.upperBound < $1.lowerBound }, "not merged: \(extents)")
            for range in RawFixture.dataRanges {
                #expect(extents.contains { $0.lowerBound <= range.lowerBound && range.upperBound <= $0.upperBound })
            }
            #expect(!extents.contains { $0.overlaps(RawFixture.holeProbe) })
            #expect(try device.dataExtents(in: RawFixture.holeProbe) == [])
            // Clipped to the range asked for.
            let inner: Range<Int64> = 100..<5000
            #expect(try device.dataExtents(in: inner) == [inner])
        }
    }

    @Test func dirtyBitmapDeviceReportsChangedExtentsAndBothMaps() throws {
        let directory = try TestDirectory()
        let image = directory.path("vm.qcow2")
        try QemuTools.run("qemu-img", ["create", "-q", "-f", "qcow2", image, "2M"], in: directory)
        try QemuTools.run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x11 0 512k", image], in: directory)
        try QemuTools.run("qemu-img", ["bitmap", "--add", "--enable", image, "backup-vda"], in: directory)
        try QemuTools.run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x22 64k 64k", "-c", "write -P 0x33 1536k 128k", image], in: directory)
        try withQemuNBD(image: image, format: "qcow2", export: "vda", bitmap: "backup-vda", in: directory) { server in
            let device = try NBDDevice(endpoint: server.endpoint, export: "vda", extents: .dirtyBitmap("backup-vda"))
            defer { device.close() }
            let changed: [Range<Int64>] = [(64 << 10)..<(128 << 10), (1536 << 10)..<(1664 << 10)]
            #expect(try device.dataExtents(in: 0..<device.size) == changed)
            #expect(try device.changedExtents(in: 0..<device.size) == changed)
            let allocated = try device.allocatedExtents(in: 0..<device.size)
            #expect(allocated.contains { $0.lowerBound == 0 && $0.upperBound >= 512 << 10 })
            let maps = try device.maps(in: 0..<device.size)
            #expect(maps.dirty?.ranges { $0.isDirty } == changed)
            #expect(maps.allocation?.ranges { !$0.isZero } == allocated)
            #expect(try readBytes(device, at: 64 << 10, count: 64 << 10).allSatisfy { $0 == 0x22 })
            #expect(try readBytes(device, at: 1536 << 10, count: 128 << 10).allSatisfy { $0 == 0x33 })
            #expect(try readBytes(device, at: 1664 << 10, count: 64 << 10).allSatisfy { $0 == 0 })
        }
    }

    @Test func everythingSourceNeedsNoBlockStatus() throws {
        let f = try RawFixture()
        try withQemuNBD(image: f.image, format: "raw", in: f.directory) { server in
            let device = try NBDDevice(endpoint: server.endpoint, export: "disk", extents: .everything)
            #expect(device.metaContexts == [])
            #expect(try device.dataExtents(in: 0..<(1 << 20)) == [0..<(1 << 20)])
            let error = #expect(throws: CoffreError.self) { _ = try device.changedExtents(in: 0..<4096) }
            #expect(error?.code == .nbdInvalidRequest)
        }
    }

    @Test func deviceReconnectsAfterTheServerRestarts() throws {
        let f = try RawFixture()
        let first = try QemuNBDServer.start(image: f.image, format: "raw", in: f.directory)
        defer { first.stop() }
        guard case .unix(let path) = first.endpoint else { throw TestFailure("not unix") }
        let device = try NBDDevice(endpoint: first.endpoint, export: "disk", maxConnections: 1,
                                   connection: .init(timeout: .seconds(5)))
        defer { device.close() }
        _ = try readBytes(device, at: 0, count: 4096)
        first.stop()
        #expect(throws: CoffreError.self) { _ = try readBytes(device, at: 0, count: 4096) }
        // A new server on the same socket: the broken connection is replaced on the next read.
        unlink(path)
        let second = try QemuNBDServer.start(image: f.image, format: "raw", socketPath: path, in: f.directory)
        defer { second.stop() }
        #expect(try readBytes(device, at: 0, count: 4096) == Array(f.expected[0..<4096]))
    }
}
