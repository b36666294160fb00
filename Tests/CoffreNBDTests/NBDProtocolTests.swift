import CoffreCore
import CoffreNBD
import Foundation
import Testing

/// Protocol violations and server errors, from a scripted fake server.
@Suite struct NBDProtocolTests {
    /// Connects to a fake server running `script`, runs `client`, and stops the server.
    func withFake<T>(
        timeout: Duration = .seconds(10), metaContexts: [String] = [],
        _ script: @escaping @Sendable (FakePeer) throws -> Void,
        client: (NBDConnection) throws -> T
    ) throws -> T {
        let directory = try TestDirectory()
        let server = try FakeNBDServer(in: directory, script)
        defer { server.stop() }
        let connection = try NBDConnection.connect(to: server.endpoint, export: "disk", metaContexts: metaContexts,
                                                   configuration: .init(timeout: timeout))
        defer { connection.close() }
        return try client(connection)
    }

    func expectError(_ code: CoffreError.Code, containing text: String, _ body: () throws -> Void) {
        let error = #expect(throws: CoffreError.self) { try body() }
        #expect(error?.code == code, "\(String(describing: error))")
        #expect(error?.message.contains(text) == true, "\(String(describing: error))")
    }

    @Test func badGreetingIsNotAnNBDServer() throws {
        let directory = try TestDirectory()
        let server = try FakeNBDServer(in: directory) { peer in try peer.send(Array("HTTP/1.1 400 Bad Request\r\n".utf8)) }
        defer { server.stop() }
        expectError(.nbdProtocolError, containing: "NBDMAGIC") {
            _ = try NBDConnection.connect(to: server.endpoint, export: "disk")
        }
    }

    @Test func badReplyMagic() throws {
        try withFake({ peer in
            try peer.handshake()
            let request = try peer.request()
            var reply = Bytes()
            reply.u32(0xDEAD_BEEF)
            reply.u32(0)
            reply.u64(request.cookie)
            try peer.send(reply.bytes)
        }) { connection throws in
            expectError(.nbdProtocolError, containing: "0xdeadbeef") { _ = try readBytes(connection, at: 0, count: 512) }
            #expect(!connection.isOpen)
        }
    }

    @Test func wrongCookie() throws {
        try withFake({ peer in
            try peer.handshake()
            let request = try peer.request()
            try peer.dataChunk(cookie: request.cookie + 1, offset: request.offset, [UInt8](repeating: 1, count: Int(request.length)), done: true)
        }) { connection throws in
            expectError(.nbdProtocolError, containing: "cookie") { _ = try readBytes(connection, at: 0, count: 512) }
        }
    }

    @Test func serverClosesMidRead() throws {
        try withFake({ peer in
            try peer.handshake()
            let request = try peer.request()
            var payload = Bytes()
            payload.u64(request.offset)
            // Promise the whole request, send a tenth of it, hang up.
            try peer.chunk(flags: 1, type: 1, cookie: request.cookie, length: 8 + request.length, payload.bytes + [UInt8](repeating: 7, count: Int(request.length) / 10))
            peer.close()
        }) { connection throws in
            expectError(.nbdConnectionLost, containing: "closed the connection") { _ = try readBytes(connection, at: 0, count: 64 << 10) }
        }
    }

    @Test func silentServerTimesOut() throws {
        try withFake(timeout: .seconds(1), { peer in
            try peer.handshake()
            _ = try peer.request()
            Thread.sleep(forTimeInterval: 3)
        }) { connection throws in
            let start = ContinuousClock.now
            expectError(.nbdTimeout, containing: "did not answer") { _ = try readBytes(connection, at: 0, count: 512) }
            #expect(ContinuousClock.now - start < .seconds(3))
        }
    }

    @Test func dataChunkOutsideTheRequest() throws {
        try withFake({ peer in
            try peer.handshake()
            let request = try peer.request()
            try peer.dataChunk(cookie: request.cookie, offset: request.offset + 256, [UInt8](repeating: 1, count: Int(request.length)), done: true)
        }) { connection throws in
            expectError(.nbdProtocolError, containing: "outside") { _ = try readBytes(connection, at: 4096, count: 512) }
        }
    }

    @Test func chunksThatLeaveAGap() throws {
        try withFake({ peer in
            try peer.handshake()
            let request = try peer.request()
            try peer.dataChunk(cookie: request.cookie, offset: request.offset, [UInt8](repeating: 1, count: 256), done: true)
        }) { connection throws in
            expectError(.nbdProtocolError, containing: "no data or hole chunk covers") { _ = try readBytes(connection, at: 0, count: 512) }
        }
    }

    @Test func holesAndDataInAnyOrderAndSimpleReplies() throws {
        try withFake({ peer in
            try peer.handshake()
            // Structured: the second half first, then a hole for the first half.
            var request = try peer.request()
            try peer.dataChunk(cookie: request.cookie, offset: request.offset + 256, [UInt8](repeating: 9, count: 256), done: false)
            var hole = Bytes()
            hole.u64(request.offset)
            hole.u32(256)
            try peer.chunk(flags: 1, type: 2, cookie: request.cookie, length: 12, hole.bytes)
            // Simple reply with data.
            request = try peer.request()
            var simple = Bytes()
            simple.u32(0x6744_6698)
            simple.u32(0)
            simple.u64(request.cookie)
            try peer.send(simple.bytes + [UInt8](repeating: 3, count: Int(request.length)))
        }) { connection throws in
            #expect(try readBytes(connection, at: 0, count: 512) == [UInt8](repeating: 0, count: 256) + [UInt8](repeating: 9, count: 256))
            #expect(try readBytes(connection, at: 512, count: 100) == [UInt8](repeating: 3, count: 100))
        }
    }

    @Test func serverErrorKeepsTheConnectionUsable() throws {
        try withFake({ peer in
            try peer.handshake()
            var request = try peer.request()
            let message = Array("disk is on fire".utf8)
            var error = Bytes()
            error.u32(5)
            error.u16(UInt16(message.count))
            error.bytes += message
            error.u64(request.offset + 100)
            try peer.chunk(flags: 1, type: 0x8002, cookie: request.cookie, length: UInt32(error.bytes.count), error.bytes)
            request = try peer.request()
            try peer.dataChunk(cookie: request.cookie, offset: request.offset, [UInt8](repeating: 4, count: Int(request.length)), done: true)
        }) { connection throws in
            let error = #expect(throws: CoffreError.self) { _ = try readBytes(connection, at: 0, count: 512) }
            #expect(error?.code == .nbdServerError)
            #expect(error?.message.contains("EIO") == true)
            #expect(error?.message.contains("disk is on fire") == true)
            #expect(error?.message.contains("at offset 100") == true)
            #expect(connection.isOpen)
            #expect(try readBytes(connection, at: 0, count: 64) == [UInt8](repeating: 4, count: 64))
        }
    }

    @Test func blockStatusShortAnswersAreFollowedUpAndOvershootClipped() throws {
        try withFake(metaContexts: [NBDMetaContext.allocation], { peer in
            try peer.handshake()
            // Each request is answered with at most two extents of 4 KiB, data then hole; the
            // last request's only extent overshoots it.
            while true {
                let request = try peer.request()
                if request.type == 2 { return }
                var status = Bytes()
                status.u32(1)
                status.u32(4096)
                status.u32(0)
                if request.length > 4096 {
                    status.u32(4096)
                    status.u32(3)
                }
                try peer.chunk(flags: 1, type: 5, cookie: request.cookie, length: UInt32(status.bytes.count), status.bytes)
            }
        }) { connection throws in
            let extents = try connection.blockStatus(context: NBDMetaContext.allocation, range: 0..<20_000)
            #expect(extents.map(\.range) == [0..<4096, 4096..<8192, 8192..<12288, 12288..<16384, 16384..<20000])
            #expect(extents.map(\.flags) == [0, 3, 0, 3, 0])
            #expect(extents.ranges { !$0.isZero } == [0..<4096, 8192..<12288, 16384..<20000])
        }
    }

    @Test func blockStatusForAnUnassignedContextId() throws {
        try withFake(metaContexts: [NBDMetaContext.allocation], { peer in
            try peer.handshake()
            let request = try peer.request()
            var status = Bytes()
            status.u32(77)
            status.u32(4096)
            status.u32(0)
            try peer.chunk(flags: 1, type: 5, cookie: request.cookie, length: 12, status.bytes)
        }) { connection throws in
            expectError(.nbdProtocolError, containing: "id 77") {
                _ = try connection.blockStatus(context: NBDMetaContext.allocation, range: 0..<4096)
            }
        }
    }
}
