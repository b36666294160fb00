public import CoffreCore
import CoffreSystem
import Foundation
import Synchronization

/// A read-only NBD server (fixed newstyle, NetworkBlockDevice/nbd `doc/proto.md`) exporting a
/// point's disks on a Unix socket, one export per disk, named like the disk (the default
/// export "" is the first disk). What QEMU needs to run a VM from a point: `NBD_OPT_GO`,
/// `NBD_OPT_INFO`, `NBD_OPT_LIST`, `NBD_OPT_EXPORT_NAME`; reads, flushes, disconnects.
///
/// - Every read is `PointDisks.read`: verified; a block that fails is an EIO reply, never
///   other bytes. Writes, trims and zeroing are refused with EPERM (the export says it is
///   read-only: QEMU puts its writes in a local overlay).
/// - Each connection is served on a thread of its own, its requests in order.
/// - `stop()` closes the listener and every connection; clients see the connection end.
public final class NBDServer: Sendable {
    public let socketPath: String
    let disks: any PointDisks
    private let listener: StreamListener
    private let connections = Mutex<[Int: Connection]>([:])

    /// A connection's socket: used by the connection's own thread; other threads only shut it
    /// down (a system call safe from any thread), which ends that thread's wait.
    private final class Connection: @unchecked Sendable {
        let socket: StreamSocket
        init(_ socket: StreamSocket) { self.socket = socket }
    }
    private let counter = Atomic(0)
    private let served = Atomic(0)
    private let failure = Mutex<CoffreError?>(nil)

    /// The largest read accepted (and advertised as the maximum block size).
    static let maxRead = 32 << 20

    /// Listens at `socketPath` and serves until `stop()`. **Blocks** only to bind.
    public init(disks: any PointDisks, socketPath: String) throws {
        self.disks = disks
        self.socketPath = socketPath
        do {
            listener = try StreamListener.listen(unixPath: socketPath)
        } catch {
            throw CoffreError(.nbdConnectFailed, "Cannot serve the point's disks at \(socketPath): \(error)",
                              workaround: "Check that the folder exists and is writable, and that the path is under 108 bytes")
        }
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "coffre-nbd-accept"
        thread.start()
    }

    /// Reads answered so far, over every connection.
    public var readsServed: Int { served.load(ordering: .relaxed) }

    /// The first read that failed (a damaged block), if any.
    public var readFailure: CoffreError? { failure.withLock { $0 } }

    /// Stops listening and ends every connection. The disks stay open: their owner closes them.
    public func stop() {
        listener.close()
        let open = connections.withLock { all in
            defer { all = [:] }
            return Array(all.values)
        }
        open.forEach { $0.socket.shutdown() }
    }

    private func acceptLoop() {
        while let socket = try? listener.accept() {
            let id = counter.add(1, ordering: .relaxed).newValue
            let connection = Connection(socket)
            connections.withLock { $0[id] = connection }
            let thread = Thread { [self] in
                serve(connection.socket)
                connections.withLock { _ = $0.removeValue(forKey: id) }
                connection.socket.close()
            }
            thread.name = "coffre-nbd-\(id)"
            thread.start()
        }
    }

    // MARK: One connection

    private struct Closed: Error {}

    private func serve(_ socket: StreamSocket) {
        do {
            guard let export = try handshake(socket) else { return }
            try transmission(socket, export: export)
        } catch {
            // The client went away or broke the protocol: the connection ends.
        }
    }

    /// The export the client chose, or nil when it aborted.
    private func handshake(_ socket: StreamSocket) throws -> Int? {
        var hello = WireWriter()
        hello.u64(NBDWire.initMagic)
        hello.u64(NBDWire.optionMagic)
        hello.u16(NBDWire.flagFixedNewstyle | NBDWire.flagNoZeroes)
        try send(socket, hello.bytes)
        var flags = WireReader(try receive(socket, 4))
        let clientFlags = flags.u32() ?? 0
        guard clientFlags & UInt32(NBDWire.flagFixedNewstyle) != 0 else { return nil }
        let noZeroes = clientFlags & UInt32(NBDWire.flagNoZeroes) != 0
        while true {
            var header = WireReader(try receive(socket, 16))
            guard header.u64() == NBDWire.optionMagic, let option = header.u32(), let length = header.u32(),
                  length <= UInt32(NBDWire.maxOptionReply) else { return nil }
            var data = WireReader(try receive(socket, Int(length)))
            switch option {
            case NBDWire.optExportName:
                guard let export = exportIndex(data.string(data.remaining) ?? "") else { return nil }
                var reply = WireWriter()
                reply.u64(UInt64(disks.readableDisks[export].size))
                reply.u16(Self.transmissionFlags)
                if !noZeroes { reply.bytes += [UInt8](repeating: 0, count: 124) }
                try send(socket, reply.bytes)
                return export
            case NBDWire.optGo, NBDWire.optInfo:
                guard let nameLength = data.u32(), let name = data.string(Int(nameLength)), let count = data.u16(),
                      data.remaining == Int(count) * 2 else {
                    try reply(socket, option, NBDWire.repErrInvalid, message: "malformed \(NBDWire.optionName(option)) request")
                    continue
                }
                guard let export = exportIndex(name) else {
                    let names = disks.readableDisks.map(\.name).joined(separator: ", ")
                    try reply(socket, option, NBDWire.repErrUnknown, message: "no export named '\(name)' (exports: \(names))")
                    continue
                }
                var info = WireWriter()
                info.u16(NBDWire.infoExport)
                info.u64(UInt64(disks.readableDisks[export].size))
                info.u16(Self.transmissionFlags)
                try reply(socket, option, NBDWire.repInfo, info.bytes)
                var sizes = WireWriter()
                sizes.u16(NBDWire.infoBlockSize)
                sizes.u32(1)
                sizes.u32(64 << 10)
                sizes.u32(UInt32(Self.maxRead))
                try reply(socket, option, NBDWire.repInfo, sizes.bytes)
                try reply(socket, option, NBDWire.repAck, [])
                if option == NBDWire.optGo { return export }
            case NBDWire.optList:
                for disk in disks.readableDisks {
                    var entry = WireWriter()
                    entry.u32(UInt32(disk.name.utf8.count))
                    entry.string(disk.name)
                    try reply(socket, option, NBDWire.repServer, entry.bytes)
                }
                try reply(socket, option, NBDWire.repAck, [])
            case NBDWire.optAbort:
                try? reply(socket, option, NBDWire.repAck, [])
                return nil
            default:
                try reply(socket, option, NBDWire.repErrUnsup, message: "\(NBDWire.optionName(option)) is not supported by Coffre's read-only export")
            }
        }
    }

    private func transmission(_ socket: StreamSocket, export: Int) throws {
        let size = disks.readableDisks[export].size
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            var request = WireReader(try receive(socket, 28))
            guard request.u32() == NBDWire.requestMagic, request.u16() != nil, let type = request.u16(),
                  let handle = request.u64(), let offset = request.u64(), let length = request.u32() else { return }
            switch type {
            case NBDWire.cmdRead:
                guard length <= UInt32(Self.maxRead), offset <= UInt64(size), UInt64(length) <= UInt64(size) - offset else {
                    try simpleReply(socket, handle, error: NBDWire.errorInvalid)
                    continue
                }
                if buffer.count < Int(length) { buffer = [UInt8](repeating: 0, count: Int(length)) }
                do {
                    var done = 0
                    try buffer.withUnsafeMutableBytes { raw in
                        while done < Int(length) {
                            let target = UnsafeMutableRawBufferPointer(rebasing: raw[done..<Int(length)])
                            let n = try disks.read(disk: export, at: Int64(offset) + Int64(done), into: target)
                            guard n > 0 else { throw CoffreError(.internalError, "short read at \(offset)") }
                            done += n
                        }
                    }
                } catch {
                    failure.withLock { if $0 == nil { $0 = error as? CoffreError ?? CoffreError(.ioError, "\(error)") } }
                    try simpleReply(socket, handle, error: NBDWire.errorIO)
                    continue
                }
                var reply = WireWriter(capacity: 16)
                reply.u32(NBDWire.simpleReplyMagic)
                reply.u32(0)
                reply.u64(handle)
                try send(socket, reply.bytes)
                try buffer.withUnsafeBytes { try send(socket, UnsafeRawBufferPointer(rebasing: $0[0..<Int(length)])) }
                served.add(1, ordering: .relaxed)
            case NBDWire.cmdWrite:
                try skip(socket, Int(length))
                try simpleReply(socket, handle, error: NBDWire.errorPermission)
            case NBDWire.cmdFlush:
                try simpleReply(socket, handle, error: 0)
            case NBDWire.cmdDisconnect:
                return
            case NBDWire.cmdTrim, NBDWire.cmdWriteZeroes:
                try simpleReply(socket, handle, error: NBDWire.errorPermission)
            default:
                try simpleReply(socket, handle, error: NBDWire.errorInvalid)
            }
        }
    }

    /// Read-only, flushes accepted, several connections may read at once.
    static let transmissionFlags = NBDWire.transmissionHasFlags | NBDWire.transmissionReadOnly
        | NBDWire.transmissionSendFlush | NBDWire.transmissionCanMultiConn

    private func exportIndex(_ name: String) -> Int? {
        name.isEmpty ? (disks.readableDisks.isEmpty ? nil : 0) : disks.readableDisks.firstIndex { $0.name == name }
    }

    private func reply(_ socket: StreamSocket, _ option: UInt32, _ type: UInt32, _ data: [UInt8]) throws {
        var reply = WireWriter(capacity: 20 + data.count)
        reply.u64(NBDWire.optionReplyMagic)
        reply.u32(option)
        reply.u32(type)
        reply.u32(UInt32(data.count))
        reply.bytes += data
        try send(socket, reply.bytes)
    }

    private func reply(_ socket: StreamSocket, _ option: UInt32, _ type: UInt32, message: String) throws {
        try reply(socket, option, type, Array(message.utf8.prefix(NBDWire.maxString)))
    }

    private func simpleReply(_ socket: StreamSocket, _ handle: UInt64, error: UInt32) throws {
        var reply = WireWriter(capacity: 16)
        reply.u32(NBDWire.simpleReplyMagic)
        reply.u32(error)
        reply.u64(handle)
        try send(socket, reply.bytes)
    }

    private func send(_ socket: StreamSocket, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try send(socket, $0) }
    }

    private func send(_ socket: StreamSocket, _ bytes: UnsafeRawBufferPointer) throws {
        do { try socket.send(bytes) } catch { throw Closed() }
    }

    private func receive(_ socket: StreamSocket, _ count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        if count > 0 {
            do { try bytes.withUnsafeMutableBytes { try socket.receive(into: $0) } } catch { throw Closed() }
        }
        return bytes
    }

    private func skip(_ socket: StreamSocket, _ count: Int) throws {
        var left = count
        while left > 0 {
            let n = min(left, 1 << 20)
            _ = try receive(socket, n)
            left -= n
        }
    }
}
