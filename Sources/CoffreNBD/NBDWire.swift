/// Constants of the NBD protocol (NetworkBlockDevice/nbd `doc/proto.md`), as sent on the wire.
enum NBDWire {
    // Handshake.
    static let initMagic: UInt64 = 0x4E42_444D_4147_4943  // "NBDMAGIC"
    static let optionMagic: UInt64 = 0x4948_4156_454F_5054  // "IHAVEOPT"
    static let oldstyleMagic: UInt64 = 0x0000_4202_8186_1253
    static let optionReplyMagic: UInt64 = 0x0003_E889_0455_65A9

    static let flagFixedNewstyle: UInt16 = 1 << 0
    static let flagNoZeroes: UInt16 = 1 << 1

    // Options.
    static let optExportName: UInt32 = 1
    static let optAbort: UInt32 = 2
    static let optList: UInt32 = 3
    static let optInfo: UInt32 = 6
    static let optGo: UInt32 = 7
    static let optStructuredReply: UInt32 = 8
    static let optSetMetaContext: UInt32 = 10

    // Option replies.
    static let repAck: UInt32 = 1
    static let repServer: UInt32 = 2
    static let repInfo: UInt32 = 3
    static let repMetaContext: UInt32 = 4
    static let repErrorBit: UInt32 = 1 << 31
    static let repErrUnsup: UInt32 = repErrorBit | 1
    static let repErrPolicy: UInt32 = repErrorBit | 2
    static let repErrInvalid: UInt32 = repErrorBit | 3
    static let repErrPlatform: UInt32 = repErrorBit | 4
    static let repErrTLSRequired: UInt32 = repErrorBit | 5
    static let repErrUnknown: UInt32 = repErrorBit | 6
    static let repErrShutdown: UInt32 = repErrorBit | 7
    static let repErrBlockSizeRequired: UInt32 = repErrorBit | 8
    static let repErrTooBig: UInt32 = repErrorBit | 9

    // NBD_REP_INFO types.
    static let infoExport: UInt16 = 0
    static let infoBlockSize: UInt16 = 3

    // Transmission flags.
    static let transmissionHasFlags: UInt16 = 1 << 0
    static let transmissionReadOnly: UInt16 = 1 << 1
    static let transmissionSendFlush: UInt16 = 1 << 2
    static let transmissionCanMultiConn: UInt16 = 1 << 8

    // Requests and replies.
    static let requestMagic: UInt32 = 0x2560_9513
    static let simpleReplyMagic: UInt32 = 0x6744_6698
    static let structuredReplyMagic: UInt32 = 0x668E_33EF

    static let cmdRead: UInt16 = 0
    static let cmdWrite: UInt16 = 1
    static let cmdDisconnect: UInt16 = 2
    static let cmdFlush: UInt16 = 3
    static let cmdTrim: UInt16 = 4
    static let cmdWriteZeroes: UInt16 = 6
    static let cmdBlockStatus: UInt16 = 7

    static let replyFlagDone: UInt16 = 1 << 0
    static let chunkNone: UInt16 = 0
    static let chunkOffsetData: UInt16 = 1
    static let chunkOffsetHole: UInt16 = 2
    static let chunkBlockStatus: UInt16 = 5
    static let chunkErrorBit: UInt16 = 1 << 15
    static let chunkError: UInt16 = chunkErrorBit | 1
    static let chunkErrorOffset: UInt16 = chunkErrorBit | 2

    // Error numbers of replies (the protocol's, not the host's errno values).
    static let errorPermission: UInt32 = 1
    static let errorIO: UInt32 = 5
    static let errorInvalid: UInt32 = 22

    /// Longest string (export name, context name, message) the protocol allows.
    static let maxString = 4096
    /// Largest option reply accepted during the handshake.
    static let maxOptionReply = 64 << 10

    /// Largest read a client may send when the server advertises no block size (proto.md).
    static let defaultMaxRead: Int64 = 32 << 20

    /// A name for an NBD error number (the protocol's own list, not the host's errno values).
    static func errorName(_ code: UInt32) -> String {
        switch code {
        case 1: "EPERM (operation not permitted)"
        case 5: "EIO (input/output error)"
        case 12: "ENOMEM (out of memory)"
        case 22: "EINVAL (invalid argument)"
        case 28: "ENOSPC (no space left)"
        case 75: "EOVERFLOW (value too large)"
        case 95: "ENOTSUP (not supported)"
        case 108: "ESHUTDOWN (server is shutting down)"
        default: "error \(code)"
        }
    }

    /// A name for an option, for messages.
    static func optionName(_ option: UInt32) -> String {
        switch option {
        case optExportName: "NBD_OPT_EXPORT_NAME"
        case optList: "NBD_OPT_LIST"
        case optInfo: "NBD_OPT_INFO"
        case optGo: "NBD_OPT_GO"
        case optStructuredReply: "NBD_OPT_STRUCTURED_REPLY"
        case optSetMetaContext: "NBD_OPT_SET_META_CONTEXT"
        default: "option \(option)"
        }
    }

    /// A name for an option error reply, for messages.
    static func replyErrorName(_ reply: UInt32) -> String {
        switch reply {
        case repErrUnsup: "NBD_REP_ERR_UNSUP"
        case repErrPolicy: "NBD_REP_ERR_POLICY"
        case repErrInvalid: "NBD_REP_ERR_INVALID"
        case repErrPlatform: "NBD_REP_ERR_PLATFORM"
        case repErrTLSRequired: "NBD_REP_ERR_TLS_REQD"
        case repErrUnknown: "NBD_REP_ERR_UNKNOWN"
        case repErrShutdown: "NBD_REP_ERR_SHUTDOWN"
        case repErrBlockSizeRequired: "NBD_REP_ERR_BLOCK_SIZE_REQD"
        case repErrTooBig: "NBD_REP_ERR_TOO_BIG"
        default: "reply 0x\(String(reply, radix: 16))"
        }
    }
}

/// Big-endian message builder.
struct WireWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 32) { bytes.reserveCapacity(capacity) }

    mutating func u16(_ value: UInt16) { append(value.bigEndian) }
    mutating func u32(_ value: UInt32) { append(value.bigEndian) }
    mutating func u64(_ value: UInt64) { append(value.bigEndian) }
    mutating func string(_ value: String) { bytes.append(contentsOf: Array(value.utf8)) }

    private mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
    }
}

/// Big-endian parser over received bytes; running past the end is reported, never trapped.
struct WireReader {
    let bytes: [UInt8]
    private(set) var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - position }

    mutating func u16() -> UInt16? { integer() }
    mutating func u32() -> UInt32? { integer() }
    mutating func u64() -> UInt64? { integer() }

    mutating func string(_ count: Int) -> String? {
        guard count >= 0, count <= remaining else { return nil }
        defer { position += count }
        return String(decoding: bytes[position..<(position + count)], as: UTF8.self)
    }

    mutating func rest() -> [UInt8] {
        defer { position = bytes.count }
        return Array(bytes[position...])
    }

    private mutating func integer<T: FixedWidthInteger>() -> T? {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { return nil }
        var value: T = 0
        for byte in bytes[position..<(position + size)] { value = value << 8 | T(byte) }
        position += size
        return value
    }
}
