import CoffreCore
import CZstd
import Crypto
import Foundation

/// The keys of an encrypted vault, derived from the key file; never stored.
public struct VaultKeys: Sendable {
    let identity: SymmetricKey
    let encryption: SymmetricKey
    let check: SymmetricKey

    /// Derives the three subkeys from the 32-byte master key with HKDF-SHA-256, salted by the vault id.
    init(master: [UInt8], vaultID: String) {
        let ikm = SymmetricKey(data: master)
        let salt = Array(vaultID.utf8)
        func derive(_ info: String) -> SymmetricKey {
            HKDF<SHA256>.deriveKey(inputKeyMaterial: ikm, salt: salt, info: Array(info.utf8), outputByteCount: 32)
        }
        identity = derive("coffre/v1/chunk-id")
        encryption = derive("coffre/v1/aes-256-gcm")
        check = derive("coffre/v1/key-check")
    }

    /// A value the vault stores to recognise its key without holding it.
    var checkValue: String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("coffre key check".utf8), using: check)
        return Data(mac).map { String(format: "%02x", $0) }.joined()
    }
}

/// Turns plaintext into stored frames and back: content address, zstd, optional AES-256-GCM.
///
/// Frame: `"CFO1"` · flags (bit 0 zstd, bit 1 AES-GCM) · 3 reserved bytes · plaintext length
/// (UInt32 LE) · payload. Encrypted payloads are nonce · ciphertext · tag, authenticated with
/// the header, the object kind and the object's id.
public struct ChunkCodec: Sendable {
    public let keys: VaultKeys?
    public let compressionLevel: Int32

    static let headerSize = 12
    static let magic: [UInt8] = Array("CFO1".utf8)

    public init(keys: VaultKeys?, compressionLevel: Int32) {
        self.keys = keys
        self.compressionLevel = compressionLevel
    }

    /// The object's address: SHA-256, or HMAC-SHA-256 keyed by the vault's identity key.
    public func id(of plain: UnsafeRawBufferPointer) -> ChunkID {
        if let keys {
            let mac = HMAC<SHA256>.authenticationCode(for: plain, using: keys.identity)
            return mac.withUnsafeBytes { ChunkID(bytes: $0) }
        }
        return SHA256.hash(data: plain).withUnsafeBytes { ChunkID(bytes: $0) }
    }

    public func id(of plain: [UInt8]) -> ChunkID {
        plain.withUnsafeBytes { id(of: $0) }
    }
}

/// Per-thread scratch state of the codec (zstd contexts and buffers). Not thread-safe.
public final class CodecWorkspace {
    public let codec: ChunkCodec
    private let cctx: OpaquePointer
    private let dctx: OpaquePointer
    private var scratch: [UInt8] = []
    private var output: [UInt8] = []

    public init(codec: ChunkCodec) {
        self.codec = codec
        cctx = ZSTD_createCCtx()
        dctx = ZSTD_createDCtx()
    }

    deinit {
        ZSTD_freeCCtx(cctx)
        ZSTD_freeDCtx(dctx)
    }

    /// Encodes `plain` as a stored frame for object `id`.
    public func encode(_ plain: [UInt8], id: ChunkID, kind: ObjectKind) -> [UInt8] {
        plain.withUnsafeBytes { encode($0, id: id, kind: kind) { Array($0) } }
    }

    /// Encodes `plain` as a stored frame for object `id` and passes the frame to `body`; the
    /// frame is built in place in this workspace. **The buffer is only valid inside `body`.**
    public func encode<R>(
        _ plain: UnsafeRawBufferPointer, id: ChunkID, kind: ObjectKind, _ body: (UnsafeRawBufferPointer) throws -> R
    ) rethrows -> R {
        let header = ChunkCodec.headerSize
        let bound = ZSTD_compressBound(plain.count)
        if scratch.count < header + bound { scratch = [UInt8](repeating: 0, count: header + bound) }
        return try scratch.withUnsafeMutableBytes { raw in
            let payload = raw.baseAddress! + header
            var flags: UInt8 = 0
            var length = ZSTD_compressCCtx(cctx, payload, bound, plain.baseAddress, plain.count, codec.compressionLevel)
            // Keep compression only when it saves at least 1/32 of the block: random data is stored as is.
            if ZSTD_isError(length) == 0, length < plain.count - plain.count / 32 {
                flags |= 1
            } else {
                length = plain.count
                if length > 0 { payload.copyMemory(from: plain.baseAddress!, byteCount: length) }
            }
            ChunkCodec.magic.withUnsafeBytes { raw.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: 4) }
            raw.storeBytes(of: UInt32(0), toByteOffset: 4, as: UInt32.self)
            raw.storeBytes(of: UInt32(plain.count).littleEndian, toByteOffset: 8, as: UInt32.self)
            guard let keys = codec.keys else {
                raw[4] = flags
                return try body(UnsafeRawBufferPointer(rebasing: raw[0..<(header + length)]))
            }
            raw[4] = flags | 2
            let headerBytes = Array(raw[0..<header])
            let aad = Self.authenticatedData(header: headerBytes, id: id, kind: kind)
            let sealed = try! AES.GCM.seal(UnsafeRawBufferPointer(rebasing: raw[header..<(header + length)]),
                                           using: keys.encryption, nonce: AES.GCM.Nonce(), authenticating: aad)
            let frame = headerBytes + sealed.combined!
            return try frame.withUnsafeBytes { try body($0) }
        }
    }

    /// Decodes a stored frame and checks that its plaintext hashes to `id`.
    /// - Throws: `ChunkDamaged` on any mismatch; never returns wrong bytes.
    public func decode(_ frame: [UInt8], id: ChunkID, kind: ObjectKind) throws -> [UInt8] {
        try decode(frame, id: id, kind: kind) { Array($0) }
    }

    /// Decodes a stored frame, checks it against `id`, and passes the plaintext to `body`
    /// without copying it. **The buffer is only valid inside `body`.**
    public func decode<R>(
        _ frame: [UInt8], id: ChunkID, kind: ObjectKind, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R {
        let damaged = { (detail: String) in CoffreError.chunkDamaged(id.hex, detail: detail) }
        guard frame.count >= ChunkCodec.headerSize, frame[0..<4].elementsEqual(ChunkCodec.magic) else {
            throw damaged("bad header")
        }
        let flags = frame[4]
        guard flags & ~3 == 0, frame[5] == 0, frame[6] == 0, frame[7] == 0 else { throw damaged("unknown flags") }
        let length = frame.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self))) }

        func finish(_ payload: UnsafeRawBufferPointer) throws -> R {
            if flags & 1 != 0 {
                if output.count < length { output = [UInt8](repeating: 0, count: length) }
                let n = output.withUnsafeMutableBytes { dst in
                    ZSTD_decompressDCtx(dctx, dst.baseAddress, length, payload.baseAddress, payload.count)
                }
                guard ZSTD_isError(n) == 0, n == length else { throw damaged("decompression failed") }
                return try output.withUnsafeBytes { raw in
                    try verified(UnsafeRawBufferPointer(rebasing: raw[0..<length]))
                }
            }
            guard payload.count == length else { throw damaged("length mismatch") }
            return try verified(payload)
        }
        func verified(_ plain: UnsafeRawBufferPointer) throws -> R {
            guard codec.id(of: plain) == id else { throw damaged("content does not match its digest") }
            return try body(plain)
        }

        if flags & 2 != 0 {
            guard let keys = codec.keys else {
                throw CoffreError.encryptionKeyMissing("object \(id.hex) is encrypted")
            }
            let aad = Self.authenticatedData(header: Array(frame[0..<ChunkCodec.headerSize]), id: id, kind: kind)
            let opened: Data
            do {
                let box = try AES.GCM.SealedBox(combined: frame[ChunkCodec.headerSize...])
                opened = try AES.GCM.open(box, using: keys.encryption, authenticating: aad)
            } catch {
                throw damaged("authentication failed")
            }
            return try opened.withUnsafeBytes { try finish($0) }
        }
        guard codec.keys == nil else { throw damaged("unencrypted object in an encrypted vault") }
        return try frame.withUnsafeBytes { raw in
            try finish(UnsafeRawBufferPointer(rebasing: raw[ChunkCodec.headerSize...]))
        }
    }

    static func authenticatedData(header: [UInt8], id: ChunkID, kind: ObjectKind) -> [UInt8] {
        header + [kind.rawValue] + id.bytes
    }
}
