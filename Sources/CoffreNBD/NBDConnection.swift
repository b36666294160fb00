import CoffreCore

/// One connection to an NBD export: fixed-newstyle handshake, then reads and block-status
/// queries with synchronous, blocking I/O.
///
/// **Not thread-safe**: use one connection from one thread at a time (`NBDDevice` keeps a pool).
/// Any transport or protocol error closes the connection (its replies can no longer be matched
/// to requests); an error the server reports for one request (an `NBDServerError`) leaves it usable.
public final class NBDConnection {
    /// Limits and timeouts of a connection.
    public struct Configuration: Sendable {
        /// Bounds the connect, the handshake and every wait for the server.
        public var timeout: Duration
        /// The longest range one NBD_CMD_BLOCK_STATUS asks about (at most 4 GiB - 1).
        public var maxBlockStatusLength: Int64
        /// The longest NBD_CMD_READ; lowered to the server's maximum block size.
        public var maxReadLength: Int64

        public init(timeout: Duration = .seconds(60), maxBlockStatusLength: Int64 = 1 << 30, maxReadLength: Int64 = 32 << 20) {
            self.timeout = timeout
            self.maxBlockStatusLength = maxBlockStatusLength
            self.maxReadLength = maxReadLength
        }
    }

    /// The server.
    public let endpoint: NBDEndpoint
    /// The export's name.
    public let export: String
    /// The export's size in bytes.
    public let size: Int64
    /// The transmission flags the server sent for the export (`NBD_FLAG_*`).
    public let transmissionFlags: UInt16
    /// Whether NBD_OPT_STRUCTURED_REPLY was accepted.
    public let hasStructuredReplies: Bool
    /// The meta contexts negotiated, by name, with the ids the server assigned.
    public let metaContexts: [String: UInt32]
    /// Requests are aligned to this many bytes (NBD_INFO_BLOCK_SIZE, 1 when not sent).
    public let minimumBlockSize: Int64
    /// The server's preferred request size.
    public let preferredBlockSize: Int64

    private let socket: NBDSocket
    private let maxRead: Int64
    private let maxBlockStatus: Int64
    private var nextCookie: UInt64 = 1

    private init(socket: NBDSocket, export: String, negotiated: NBDNegotiated, configuration: Configuration) {
        self.socket = socket
        self.endpoint = socket.endpoint
        self.export = export
        self.size = negotiated.size
        self.transmissionFlags = negotiated.transmissionFlags
        self.hasStructuredReplies = negotiated.structuredReplies
        self.metaContexts = negotiated.metaContexts
        self.minimumBlockSize = negotiated.minimumBlockSize
        self.preferredBlockSize = negotiated.preferredBlockSize
        let alignment = negotiated.minimumBlockSize
        let read = min(configuration.maxReadLength, negotiated.maximumBlockSize)
        self.maxRead = max(alignment, read / alignment * alignment)
        let status = min(max(configuration.maxBlockStatusLength, 1), Int64(UInt32.max))
        self.maxBlockStatus = max(alignment, status / alignment * alignment)
    }

    deinit { close() }

    /// Connects to `endpoint` and opens `export`, negotiating `metaContexts` (e.g.
    /// `base:allocation`, `qemu:dirty-bitmap:backup-vda`).
    ///
    /// - Throws: `NBDExportNotFound` naming the export, `NBDMetaContextUnavailable` naming a
    ///   context the server does not offer, `NBDConnectFailed`, `NBDProtocolError`, …
    public static func connect(
        to endpoint: NBDEndpoint, export: String, metaContexts: [String] = [],
        configuration: Configuration = Configuration()
    ) throws -> NBDConnection {
        let socket = try NBDSocket.connect(to: endpoint, timeout: configuration.timeout)
        do {
            let negotiated = try NBDHandshake(socket: socket, export: export).run(metaContexts: metaContexts)
            return NBDConnection(socket: socket, export: export, negotiated: negotiated, configuration: configuration)
        } catch {
            socket.close()
            throw error
        }
    }

    /// Connects over a Unix domain socket.
    public static func connect(
        unixSocket path: String, export: String, metaContexts: [String] = [],
        configuration: Configuration = Configuration()
    ) throws -> NBDConnection {
        try connect(to: .unix(path: path), export: export, metaContexts: metaContexts, configuration: configuration)
    }

    /// Connects over TCP.
    public static func connect(
        host: String, port: Int, export: String, metaContexts: [String] = [],
        configuration: Configuration = Configuration()
    ) throws -> NBDConnection {
        try connect(to: .tcp(host: host, port: port), export: export, metaContexts: metaContexts, configuration: configuration)
    }

    /// Whether the connection can still be used.
    public var isOpen: Bool { socket.isOpen }

    /// Whether the server says the export is read-only.
    public var isReadOnly: Bool { transmissionFlags & NBDWire.transmissionReadOnly != 0 }

    /// Whether the server says several connections to the export see the same data at all times.
    public var canMultiConnect: Bool { transmissionFlags & NBDWire.transmissionCanMultiConn != 0 }

    /// Sends NBD_CMD_DISC and closes the socket; harmless when already closed.
    public func close() {
        guard socket.isOpen else { return }
        let request = makeRequest(type: NBDWire.cmdDisconnect, cookie: 0, offset: 0, length: 0)
        try? socket.send(request, during: "NBD_CMD_DISC")
        socket.close()
    }

    // MARK: Reads

    /// Fills `buffer` with the export's bytes at `offset`; holes read as zeros.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws {
        let count = Int64(buffer.count)
        guard offset >= 0, count <= size - offset else {
            throw CoffreError.nbdInvalidRequest(export, "reading \(count) bytes at offset \(offset) goes past the end of the export (\(size) bytes)")
        }
        guard count > 0 else { return }
        let alignment = minimumBlockSize
        guard offset % alignment == 0, count % alignment == 0 || offset + count == size else {
            // Unaligned: read the enclosing aligned blocks and copy the part asked for.
            let start = offset / alignment * alignment
            let end = min(size, (offset + count + alignment - 1) / alignment * alignment)
            let bounce = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(end - start), alignment: 64)
            defer { bounce.deallocate() }
            try readAligned(into: bounce, at: start)
            let from = Int(offset - start)
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bounce[from..<(from + buffer.count)]))
            return
        }
        try readAligned(into: buffer, at: offset)
    }

    private func readAligned(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws {
        var done = 0
        while done < buffer.count {
            let n = Int(min(Int64(buffer.count - done), maxRead))
            try readRequest(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + n)]), at: offset + Int64(done))
            done += n
        }
    }

    private func readRequest(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws {
        let operation = "NBD_CMD_READ of \(buffer.count) bytes at \(offset)"
        let length = Int64(buffer.count)
        var serverError: CoffreError?
        try exchange(operation) {
            let cookie = try sendRequest(NBDWire.cmdRead, offset: offset, length: length, during: operation)
            var covered: [Range<Int64>] = []
            var simpleReply = false
            serverError = try receiveReply(to: cookie, of: offset..<(offset + length), during: operation, simple: { error in
                simpleReply = true
                guard error == 0 else { return serverErrorFor(operation, code: error, message: "") }
                try socket.receive(into: buffer, during: operation)
                return nil
            }, chunk: { type, payload in
                switch type {
                case NBDWire.chunkOffsetData:
                    guard payload > 8, Int64(payload) - 8 <= length else {
                        throw CoffreError.nbdProtocolError(endpoint, "a \(payload)-byte data chunk for \(operation)")
                    }
                    let start = try receiveOffset(within: offset..<(offset + length), count: Int64(payload) - 8, during: operation)
                    let from = Int(start - offset)
                    try socket.receive(into: UnsafeMutableRawBufferPointer(rebasing: buffer[from..<(from + Int(payload) - 8)]), during: operation)
                    covered.append(start..<(start + Int64(payload) - 8))
                case NBDWire.chunkOffsetHole:
                    guard payload == 12 else {
                        throw CoffreError.nbdProtocolError(endpoint, "a hole chunk of \(payload) bytes, not 12")
                    }
                    var r = WireReader(try socket.receive(12, during: operation))
                    let start = Int64(bitPattern: r.u64()!), holeLength = Int64(r.u32()!)
                    guard holeLength > 0, start >= offset, start <= offset + length - holeLength else {
                        throw CoffreError.nbdProtocolError(endpoint, "a hole of \(holeLength) bytes at \(start) is outside \(operation)")
                    }
                    let from = Int(start - offset)
                    UnsafeMutableRawBufferPointer(rebasing: buffer[from..<(from + Int(holeLength))]).initializeMemory(as: UInt8.self, repeating: 0)
                    covered.append(start..<(start + holeLength))
                default:
                    return false
                }
                return true
            })
            guard serverError == nil, !simpleReply else { return }
            // The chunks must tile the request exactly: no gap (stale bytes) and no overlap.
            covered.sort { $0.lowerBound < $1.lowerBound }
            var position = offset
            for range in covered {
                guard range.lowerBound == position else {
                    throw CoffreError.nbdProtocolError(endpoint, range.lowerBound < position
                        ? "reply chunks overlap at \(range.lowerBound) in \(operation)"
                        : "no data or hole chunk covers \(position)..<\(range.lowerBound) in \(operation)")
                }
                position = range.upperBound
            }
            guard position == offset + length else {
                throw CoffreError.nbdProtocolError(endpoint, "no data or hole chunk covers \(position)..<\(offset + length) in \(operation)")
            }
        }
        if let serverError { throw serverError }
    }

    // MARK: Block status

    /// The extents of `context` covering `range` (clipped to the export), adjacent extents
    /// with equal flags merged. Loops until the server has described the whole range.
    public func blockStatus(context: String, range: Range<Int64>) throws -> [NBDExtent] {
        try blockStatus(contexts: [context], range: range)[context] ?? []
    }

    /// The extents of each of `contexts` covering `range`, from the same requests: every
    /// NBD_CMD_BLOCK_STATUS reply describes all negotiated contexts.
    public func blockStatus(contexts: [String], range: Range<Int64>) throws -> [String: [NBDExtent]] {
        var ids: [UInt32: String] = [:]
        for context in contexts {
            guard let id = metaContexts[context] else {
                throw CoffreError.nbdInvalidRequest(export, "the meta context '\(context)' was not negotiated on this connection (negotiated: \(metaContexts.keys.sorted().joined(separator: ", ")))")
            }
            ids[id] = context
        }
        let wanted = range.clamped(to: 0..<size)
        var extents: [String: [NBDExtent]] = [:]
        var positions: [String: Int64] = [:]
        for context in contexts {
            extents[context] = []
            positions[context] = wanted.lowerBound
        }
        while let position = positions.values.min(), position < wanted.upperBound {
            let start = position / minimumBlockSize * minimumBlockSize
            var end = min(wanted.upperBound, start + maxBlockStatus)
            end = min(size, (end + minimumBlockSize - 1) / minimumBlockSize * minimumBlockSize)
            let before = positions
            let reply = try blockStatusRequest(offset: start, length: end - start, ids: ids)
            for (id, descriptors) in reply {
                guard let context = ids[id] else { continue }
                var cursor = start
                for (length, flags) in descriptors {
                    let extent = max(cursor, positions[context]!)..<min(cursor + length, wanted.upperBound)
                    cursor += length
                    if !extent.isEmpty { extents[context]!.append(NBDExtent(range: extent, flags: flags)) }
                }
                positions[context] = max(positions[context]!, min(cursor, wanted.upperBound))
            }
            guard positions != before else {
                socket.close()
                throw CoffreError.nbdProtocolError(endpoint, "block status at \(start) made no progress (extents shorter than the \(minimumBlockSize)-byte block size)")
            }
        }
        return extents.mapValues { $0.coalesced() }
    }

    /// One NBD_CMD_BLOCK_STATUS: per context id, (length, flags) descriptors from `offset`.
    private func blockStatusRequest(offset: Int64, length: Int64, ids: [UInt32: String]) throws -> [UInt32: [(Int64, UInt32)]] {
        let operation = "NBD_CMD_BLOCK_STATUS of \(length) bytes at \(offset)"
        var serverError: CoffreError?
        var result: [UInt32: [(Int64, UInt32)]] = [:]
        let known = Set(metaContexts.values)
        try exchange(operation) {
            let cookie = try sendRequest(NBDWire.cmdBlockStatus, offset: offset, length: length, during: operation)
            serverError = try receiveReply(to: cookie, of: offset..<(offset + length), during: operation, simple: { error in
                guard error != 0 else {
                    throw CoffreError.nbdProtocolError(endpoint, "a simple reply without error to \(operation)")
                }
                return serverErrorFor(operation, code: error, message: "")
            }, chunk: { type, payload in
                guard type == NBDWire.chunkBlockStatus else { return false }
                guard payload >= 12, (payload - 4) % 8 == 0, payload <= 64 << 20 else {
                    throw CoffreError.nbdProtocolError(endpoint, "a block status chunk of \(payload) bytes")
                }
                var r = WireReader(try socket.receive(Int(payload), during: operation))
                let id = r.u32()!
                guard known.contains(id) else {
                    throw CoffreError.nbdProtocolError(endpoint, "block status for meta context id \(id), which was never assigned")
                }
                guard result[id] == nil else {
                    throw CoffreError.nbdProtocolError(endpoint, "two block status chunks for meta context id \(id) in one reply")
                }
                var descriptors: [(Int64, UInt32)] = []
                descriptors.reserveCapacity(r.remaining / 8)
                var total: Int64 = 0
                while r.remaining > 0 {
                    let extentLength = Int64(r.u32()!), extentFlags = r.u32()!
                    guard extentLength > 0 else {
                        throw CoffreError.nbdProtocolError(endpoint, "a zero-length extent in \(operation)")
                    }
                    // Only the last descriptor may run past the request (proto.md).
                    guard total < length else {
                        throw CoffreError.nbdProtocolError(endpoint, "extents run past the end of \(operation)")
                    }
                    total += extentLength
                    descriptors.append((extentLength, extentFlags))
                }
                result[id] = descriptors
                return true
            })
            guard serverError == nil else { return }
            for (id, context) in ids where result[id] == nil {
                throw CoffreError.nbdProtocolError(endpoint, "the reply to \(operation) has no extents for '\(context)'")
            }
        }
        if let serverError { throw serverError }
        return result
    }

    // MARK: Requests and replies

    private enum ReplyHeader {
        case simple(error: UInt32)
        case chunk(flags: UInt16, type: UInt16, payload: UInt32)
    }

    /// Runs one request/reply exchange; any error thrown inside leaves the stream out of step,
    /// so it closes the connection.
    private func exchange(_ operation: String, _ body: () throws -> Void) throws {
        guard socket.isOpen else {
            throw CoffreError.nbdConnectionLost(endpoint, during: operation, reason: "the connection is closed (an earlier error or close() ended it)")
        }
        do {
            try body()
        } catch {
            socket.close()
            throw error
        }
    }

    private func makeRequest(type: UInt16, cookie: UInt64, offset: Int64, length: Int64) -> [UInt8] {
        var request = WireWriter(capacity: 28)
        request.u32(NBDWire.requestMagic)
        request.u16(0)  // command flags
        request.u16(type)
        request.u64(cookie)
        request.u64(UInt64(offset))
        request.u32(UInt32(length))
        return request.bytes
    }

    private func sendRequest(_ type: UInt16, offset: Int64, length: Int64, during operation: String) throws -> UInt64 {
        let cookie = nextCookie
        nextCookie &+= 1
        try socket.send(makeRequest(type: type, cookie: cookie, offset: offset, length: length), during: operation)
        return cookie
    }

    /// Reads the reply to `cookie` up to its last chunk. A simple reply goes to `simple`; each
    /// structured chunk other than NONE to `chunk`, which reads its payload and returns false
    /// for a type it does not expect. Error chunks are read too (the reply goes on).
    /// - Returns: the server's error: `simple`'s answer, or the first error chunk.
    private func receiveReply(
        to cookie: UInt64, of request: Range<Int64>, during operation: String,
        simple: (_ error: UInt32) throws -> CoffreError?, chunk: (_ type: UInt16, _ payload: UInt32) throws -> Bool
    ) throws -> CoffreError? {
        var serverError: CoffreError?
        var done = false
        while !done {
            switch try receiveReplyHeader(cookie: cookie, during: operation) {
            case .simple(let error):
                return try simple(error)
            case .chunk(let flags, let type, let payload):
                done = flags & NBDWire.replyFlagDone != 0
                if type == NBDWire.chunkNone {
                    guard payload == 0, done else {
                        throw CoffreError.nbdProtocolError(endpoint, "NBD_REPLY_TYPE_NONE with \(payload) bytes or without NBD_REPLY_FLAG_DONE")
                    }
                } else if try !chunk(type, payload) {
                    let error = try receiveErrorChunk(type: type, payload: payload, within: request, during: operation)
                    serverError = serverError ?? error
                }
            }
        }
        return serverError
    }

    private func receiveReplyHeader(cookie: UInt64, during operation: String) throws -> ReplyHeader {
        var magicBytes = WireReader(try socket.receive(4, during: operation))
        let magic = magicBytes.u32()!
        switch magic {
        case NBDWire.simpleReplyMagic:
            var r = WireReader(try socket.receive(12, during: operation))
            let error = r.u32()!, received = r.u64()!
            try check(cookie: received, expected: cookie, operation)
            return .simple(error: error)
        case NBDWire.structuredReplyMagic:
            guard hasStructuredReplies else {
                throw CoffreError.nbdProtocolError(endpoint, "a structured reply to \(operation) although structured replies were not negotiated")
            }
            var r = WireReader(try socket.receive(16, during: operation))
            let flags = r.u16()!, type = r.u16()!, received = r.u64()!, payload = r.u32()!
            try check(cookie: received, expected: cookie, operation)
            return .chunk(flags: flags, type: type, payload: payload)
        default:
            throw CoffreError.nbdProtocolError(endpoint, "reply magic 0x\(String(magic, radix: 16)) to \(operation) is neither a simple nor a structured reply")
        }
    }

    private func check(cookie: UInt64, expected: UInt64, _ operation: String) throws {
        guard cookie == expected else {
            throw CoffreError.nbdProtocolError(endpoint, "a reply for cookie \(cookie) arrived while waiting for cookie \(expected) (\(operation))")
        }
    }

    /// Reads a chunk's 64-bit offset and checks that `count` bytes from it lie inside `request`.
    private func receiveOffset(within request: Range<Int64>, count: Int64, during operation: String) throws -> Int64 {
        var r = WireReader(try socket.receive(8, during: operation))
        let start = Int64(bitPattern: r.u64()!)
        guard start >= request.lowerBound, start <= request.upperBound - count else {
            throw CoffreError.nbdProtocolError(endpoint, "a chunk of \(count) bytes at \(start) is outside \(operation)")
        }
        return start
    }

    /// A chunk the callers of `receiveReply` do not handle: an error chunk is read and returned (the
    /// reply goes on until its last chunk); any other type is a protocol error.
    private func receiveErrorChunk(type: UInt16, payload: UInt32, within request: Range<Int64>, during operation: String) throws -> CoffreError {
        guard type & NBDWire.chunkErrorBit != 0 else {
            throw CoffreError.nbdProtocolError(endpoint, "unexpected reply chunk type \(type) for \(operation)")
        }
        guard payload >= 6, payload <= 6 + UInt32(NBDWire.maxString) + 8 else {
            throw CoffreError.nbdProtocolError(endpoint, "an error chunk of \(payload) bytes")
        }
        var r = WireReader(try socket.receive(Int(payload), during: operation))
        let code = r.u32()!, messageLength = Int(r.u16()!)
        guard code != 0 else { throw CoffreError.nbdProtocolError(endpoint, "an error chunk with error 0") }
        let extra = type == NBDWire.chunkErrorOffset ? 8 : Int(payload) - 6 - messageLength
        guard messageLength + extra == Int(payload) - 6, extra >= 0, let message = r.string(messageLength) else {
            throw CoffreError.nbdProtocolError(endpoint, "an error chunk's message length \(messageLength) does not match its size \(payload)")
        }
        var where_ = operation
        if type == NBDWire.chunkErrorOffset {
            let at = Int64(bitPattern: r.u64()!)
            guard request.contains(at) else {
                throw CoffreError.nbdProtocolError(endpoint, "an error at offset \(at) is outside \(operation)")
            }
            where_ += " (at offset \(at))"
        }
        return serverErrorFor(where_, code: code, message: message)
    }

    private func serverErrorFor(_ operation: String, code: UInt32, message: String) -> CoffreError {
        CoffreError.nbdServerError(export, at: endpoint, operation: operation, error: NBDWire.errorName(code), message: message)
    }
}
