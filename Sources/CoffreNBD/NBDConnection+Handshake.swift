import CoffreCore

/// What the fixed-newstyle handshake settled.
struct NBDNegotiated {
    var size: Int64 = -1
    var transmissionFlags: UInt16 = 0
    var structuredReplies = false
    var metaContexts: [String: UInt32] = [:]
    var minimumBlockSize: Int64 = 1
    var preferredBlockSize: Int64 = 4096
    var maximumBlockSize: Int64 = NBDWire.defaultMaxRead
}

/// The option haggling phase: structured replies, meta contexts, then NBD_OPT_GO.
struct NBDHandshake {
    let socket: NBDSocket
    let export: String
    var endpoint: NBDEndpoint { socket.endpoint }

    /// Runs the handshake; afterwards the socket is in the transmission phase.
    func run(metaContexts: [String]) throws -> NBDNegotiated {
        let operation = "the handshake"
        guard export.utf8.count <= NBDWire.maxString else {
            throw CoffreError.nbdInvalidRequest(export, "an export name is at most \(NBDWire.maxString) bytes")
        }
        for context in metaContexts where context.utf8.isEmpty || context.utf8.count > NBDWire.maxString {
            throw CoffreError.nbdInvalidRequest(export, "meta context names are 1 to \(NBDWire.maxString) bytes ('\(context.prefix(64))')")
        }

        var greeting = WireReader(try socket.receive(18, during: operation))
        let magic = greeting.u64()!
        guard magic == NBDWire.initMagic else {
            throw CoffreError.nbdProtocolError(endpoint, "the greeting 0x\(String(magic, radix: 16)) is not NBDMAGIC: is this an NBD server?")
        }
        let style = greeting.u64()!
        if style == NBDWire.oldstyleMagic {
            throw CoffreError.nbdProtocolError(endpoint, "the server speaks the oldstyle handshake, which has no export names; only fixed newstyle is supported")
        }
        guard style == NBDWire.optionMagic else {
            throw CoffreError.nbdProtocolError(endpoint, "the greeting's second magic 0x\(String(style, radix: 16)) is not IHAVEOPT")
        }
        let handshakeFlags = greeting.u16()!
        guard handshakeFlags & NBDWire.flagFixedNewstyle != 0 else {
            throw CoffreError.nbdProtocolError(endpoint, "the server does not offer NBD_FLAG_FIXED_NEWSTYLE")
        }
        let noZeroes = handshakeFlags & NBDWire.flagNoZeroes != 0
        var clientFlags = WireWriter()
        clientFlags.u32(UInt32(NBDWire.flagFixedNewstyle | (noZeroes ? NBDWire.flagNoZeroes : 0)))
        try socket.send(clientFlags.bytes, during: operation)

        var result = NBDNegotiated()

        // Structured replies: needed for block status, and they let the server send holes.
        try sendOption(NBDWire.optStructuredReply, [])
        let reply = try receiveOptionReply(NBDWire.optStructuredReply)
        switch reply.type {
        case NBDWire.repAck:
            guard reply.data.isEmpty else { throw CoffreError.nbdProtocolError(endpoint, "NBD_REP_ACK carried \(reply.data.count) bytes") }
            result.structuredReplies = true
        case NBDWire.repErrUnsup, NBDWire.repErrPolicy:
            result.structuredReplies = false
        default:
            throw negotiationError(NBDWire.optStructuredReply, reply)
        }

        if !metaContexts.isEmpty {
            guard result.structuredReplies else {
                throw CoffreError.nbdMetaContextUnavailable(metaContexts[0], export: export, at: endpoint,
                                                            reason: "the server does not support structured replies")
            }
            result.metaContexts = try setMetaContexts(metaContexts)
        }

        try go(into: &result, noZeroes: noZeroes)
        return result
    }

    private func setMetaContexts(_ contexts: [String]) throws -> [String: UInt32] {
        var data = WireWriter()
        data.u32(UInt32(export.utf8.count))
        data.string(export)
        data.u32(UInt32(contexts.count))
        for context in contexts {
            data.u32(UInt32(context.utf8.count))
            data.string(context)
        }
        try sendOption(NBDWire.optSetMetaContext, data.bytes)
        var assigned: [String: UInt32] = [:]
        while true {
            let reply = try receiveOptionReply(NBDWire.optSetMetaContext)
            switch reply.type {
            case NBDWire.repMetaContext:
                var r = WireReader(reply.data)
                guard let id = r.u32(), let name = r.string(r.remaining), !name.isEmpty else {
                    throw CoffreError.nbdProtocolError(endpoint, "a NBD_REP_META_CONTEXT reply of \(reply.data.count) bytes is too short")
                }
                guard contexts.contains(name) else {
                    throw CoffreError.nbdProtocolError(endpoint, "the server assigned the meta context '\(name)', which was not asked for")
                }
                guard !assigned.values.contains(id) || assigned[name] == id else {
                    throw CoffreError.nbdProtocolError(endpoint, "the server assigned id \(id) to two meta contexts")
                }
                assigned[name] = id
            case NBDWire.repAck:
                for context in contexts where assigned[context] == nil {
                    throw CoffreError.nbdMetaContextUnavailable(context, export: export, at: endpoint,
                                                                reason: "the server does not know it")
                }
                return assigned
            case NBDWire.repErrUnknown:
                throw CoffreError.nbdExportNotFound(export, at: endpoint, serverMessage: reply.message)
            case NBDWire.repErrUnsup:
                throw CoffreError.nbdMetaContextUnavailable(contexts[0], export: export, at: endpoint,
                                                            reason: "the server does not support NBD_OPT_SET_META_CONTEXT")
            default:
                throw negotiationError(NBDWire.optSetMetaContext, reply)
            }
        }
    }

    private func go(into result: inout NBDNegotiated, noZeroes: Bool) throws {
        var data = WireWriter()
        data.u32(UInt32(export.utf8.count))
        data.string(export)
        data.u16(1)
        data.u16(NBDWire.infoBlockSize)  // we honour the server's block size constraints
        try sendOption(NBDWire.optGo, data.bytes)
        var sawExport = false
        while true {
            let reply = try receiveOptionReply(NBDWire.optGo)
            switch reply.type {
            case NBDWire.repInfo:
                var r = WireReader(reply.data)
                guard let kind = r.u16() else { throw CoffreError.nbdProtocolError(endpoint, "an empty NBD_REP_INFO reply") }
                switch kind {
                case NBDWire.infoExport:
                    guard reply.data.count == 12, let size = r.u64(), let flags = r.u16() else {
                        throw CoffreError.nbdProtocolError(endpoint, "NBD_INFO_EXPORT has \(reply.data.count) bytes, not 12")
                    }
                    try setExport(size: size, flags: flags, into: &result)
                    sawExport = true
                case NBDWire.infoBlockSize:
                    guard reply.data.count == 14, let minimum = r.u32(), let preferred = r.u32(), let maximum = r.u32() else {
                        throw CoffreError.nbdProtocolError(endpoint, "NBD_INFO_BLOCK_SIZE has \(reply.data.count) bytes, not 14")
                    }
                    guard minimum >= 1, minimum <= 64 << 10, minimum.nonzeroBitCount == 1,
                          preferred >= minimum, maximum >= minimum
                    else {
                        throw CoffreError.nbdProtocolError(endpoint, "block sizes min \(minimum), preferred \(preferred), max \(maximum) are inconsistent")
                    }
                    result.minimumBlockSize = Int64(minimum)
                    result.preferredBlockSize = Int64(preferred)
                    result.maximumBlockSize = Int64(maximum)
                default:
                    break  // NBD_INFO_NAME, NBD_INFO_DESCRIPTION and future kinds: not needed
                }
            case NBDWire.repAck:
                guard sawExport else {
                    throw CoffreError.nbdProtocolError(endpoint, "NBD_OPT_GO was acknowledged without NBD_INFO_EXPORT")
                }
                return
            case NBDWire.repErrUnknown:
                throw CoffreError.nbdExportNotFound(export, at: endpoint, serverMessage: reply.message)
            case NBDWire.repErrUnsup:
                // A server older than NBD_OPT_GO: NBD_OPT_EXPORT_NAME enters transmission
                // directly, and an unknown name just closes the connection.
                try exportName(into: &result, noZeroes: noZeroes)
                return
            default:
                throw negotiationError(NBDWire.optGo, reply)
            }
        }
    }

    private func exportName(into result: inout NBDNegotiated, noZeroes: Bool) throws {
        try sendOption(NBDWire.optExportName, Array(export.utf8))
        let reply: [UInt8]
        do {
            reply = try socket.receive(10 + (noZeroes ? 0 : 124), during: "NBD_OPT_EXPORT_NAME")
        } catch let error as CoffreError where error.code == .nbdConnectionLost {
            throw CoffreError.nbdExportNotFound(export, at: endpoint, serverMessage: "the server closed the connection on NBD_OPT_EXPORT_NAME")
        }
        var r = WireReader(reply)
        try setExport(size: r.u64()!, flags: r.u16()!, into: &result)
    }

    private func setExport(size: UInt64, flags: UInt16, into result: inout NBDNegotiated) throws {
        guard size <= UInt64(Int64.max) else {
            throw CoffreError.nbdProtocolError(endpoint, "the export size \(size) does not fit a signed 64-bit offset")
        }
        result.size = Int64(size)
        result.transmissionFlags = flags
    }

    private func sendOption(_ option: UInt32, _ data: [UInt8]) throws {
        var message = WireWriter(capacity: 16 + data.count)
        message.u64(NBDWire.optionMagic)
        message.u32(option)
        message.u32(UInt32(data.count))
        message.bytes.append(contentsOf: data)
        try socket.send(message.bytes, during: NBDWire.optionName(option))
    }

    struct OptionReply {
        var type: UInt32
        var data: [UInt8]
        /// The human-readable text an error reply may carry.
        var message: String { String(decoding: data.prefix(NBDWire.maxString), as: UTF8.self) }
    }

    private func receiveOptionReply(_ option: UInt32) throws -> OptionReply {
        let operation = NBDWire.optionName(option)
        var header = WireReader(try socket.receive(20, during: operation))
        let magic = header.u64()!, echoed = header.u32()!, type = header.u32()!, length = header.u32()!
        guard magic == NBDWire.optionReplyMagic else {
            throw CoffreError.nbdProtocolError(endpoint, "option reply magic 0x\(String(magic, radix: 16)) during \(operation)")
        }
        guard echoed == option else {
            throw CoffreError.nbdProtocolError(endpoint, "a reply to \(NBDWire.optionName(echoed)) arrived for \(operation)")
        }
        guard length <= NBDWire.maxOptionReply else {
            throw CoffreError.nbdProtocolError(endpoint, "a \(length)-byte reply to \(operation) is too long")
        }
        return OptionReply(type: type, data: try socket.receive(Int(length), during: operation))
    }

    private func negotiationError(_ option: UInt32, _ reply: OptionReply) -> CoffreError {
        if reply.type & NBDWire.repErrorBit == 0 {
            return CoffreError.nbdProtocolError(endpoint, "unexpected reply type \(reply.type) to \(NBDWire.optionName(option))")
        }
        return CoffreError.nbdNegotiationFailed(export, at: endpoint, option: NBDWire.optionName(option),
                                                reply: NBDWire.replyErrorName(reply.type), serverMessage: reply.message)
    }
}
