import CoffreNBD
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A scripted NBD server on a Unix socket, for protocol violations qemu-nbd never commits.
/// It accepts one client and runs `script` on it in a thread, then closes the connection.
final class FakeNBDServer: @unchecked Sendable {
    let endpoint: NBDEndpoint
    private let listener: Int32
    private let finished = DispatchSemaphore(value: 0)

    init(in directory: TestDirectory, _ script: @escaping @Sendable (FakePeer) throws -> Void) throws {
        let path = directory.path("fake-\(UUID().uuidString.prefix(8)).sock")
        endpoint = .unix(path: path)
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.listener = listener
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8))
            raw[path.utf8.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(listener, 4) == 0 else { throw TestFailure("fake server bind/listen: \(errno)") }
        let finished = self.finished
        Thread {
            defer { finished.signal() }
            let fd = accept(listener, nil, nil)
            if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            guard fd >= 0 else { return }
            let peer = FakePeer(fd: fd)
            try? script(peer)
            peer.close()
        }.start()
    }

    /// Waits for the script to end (bounded) and closes the listener.
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        _ = finished.wait(timeout: .now() + 10)
        close(listener)
    }

    deinit { close(listener) }
}

/// The server side of one fake connection.
final class FakePeer {
    private var fd: Int32
    /// Export size sent in NBD_INFO_EXPORT.
    var exportSize: UInt64 = 1 << 20

    init(fd: Int32) { self.fd = fd }

    func close() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }

    func send(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestFailure("fake send: \(errno)") }
            done += n
        }
    }

    func receive(_ count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + done, count - done, 0) }
            guard n > 0 else { throw TestFailure("fake recv: \(n) \(errno)") }
            done += n
        }
        return bytes
    }

    /// Greeting, then options until NBD_OPT_GO: structured replies accepted, every meta
    /// context asked for gets id 1, 2, …, GO answers with the export size and read-only flags.
    func handshake() throws {
        var greeting = Bytes()
        greeting.u64(0x4E42_444D_4147_4943)
        greeting.u64(0x4948_4156_454F_5054)
        greeting.u16(3)
        try send(greeting.bytes)
        _ = try receive(4)
        while true {
            let header = Parser(try receive(16))
            let option = header.u32(8), length = Int(header.u32(12))
            let data = Parser(try receive(length))
            switch option {
            case 8: try optionReply(option, 1, [])
            case 10:
                var position = 4 + Int(data.u32(0))
                let count = data.u32(position)
                position += 4
                for id in UInt32(1)..<(count + 1) {
                    let nameLength = Int(data.u32(position))
                    let name = Array(data.bytes[(position + 4)..<(position + 4 + nameLength)])
                    position += 4 + nameLength
                    var reply = Bytes()
                    reply.u32(id)
                    reply.bytes += name
                    try optionReply(option, 4, reply.bytes)
                }
                try optionReply(option, 1, [])
            case 7:
                var info = Bytes()
                info.u16(0)
                info.u64(exportSize)
                info.u16(1 | 2)
                try optionReply(option, 3, info.bytes)
                try optionReply(option, 1, [])
                return
            default:
                try optionReply(option, 0x8000_0001, [])
            }
        }
    }

    func optionReply(_ option: UInt32, _ type: UInt32, _ data: [UInt8]) throws {
        var reply = Bytes()
        reply.u64(0x0003_E889_0455_65A9)
        reply.u32(option)
        reply.u32(type)
        reply.u32(UInt32(data.count))
        reply.bytes += data
        try send(reply.bytes)
    }

    struct Request { var type: UInt16; var cookie: UInt64; var offset: UInt64; var length: UInt32 }

    func request() throws -> Request {
        let p = Parser(try receive(28))
        return Request(type: p.u16(6), cookie: p.u64(8), offset: p.u64(16), length: p.u32(24))
    }

    /// A structured reply chunk header (and payload).
    func chunk(flags: UInt16, type: UInt16, cookie: UInt64, length: UInt32, _ payload: [UInt8] = []) throws {
        var c = Bytes()
        c.u32(0x668E_33EF)
        c.u16(flags)
        c.u16(type)
        c.u64(cookie)
        c.u32(length)
        c.bytes += payload
        try send(c.bytes)
    }

    /// A complete OFFSET_DATA chunk.
    func dataChunk(cookie: UInt64, offset: UInt64, _ data: [UInt8], done: Bool) throws {
        var payload = Bytes()
        payload.u64(offset)
        payload.bytes += data
        try chunk(flags: done ? 1 : 0, type: 1, cookie: cookie, length: UInt32(payload.bytes.count), payload.bytes)
    }
}

struct Bytes {
    var bytes: [UInt8] = []
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.bigEndian) { bytes += $0 } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.bigEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.bigEndian) { bytes += $0 } }
}

struct Parser {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    func u16(_ at: Int) -> UInt16 { bytes[at..<(at + 2)].reduce(0) { $0 << 8 | UInt16($1) } }
    func u32(_ at: Int) -> UInt32 { bytes[at..<(at + 4)].reduce(0) { $0 << 8 | UInt32($1) } }
    func u64(_ at: Int) -> UInt64 { bytes[at..<(at + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
}
