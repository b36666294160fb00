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
    public func encode(_ plain: UnsafeRawBufferPointer, id: ChunkID, kind: ObjectKind) -> [UInt8] {
        let bound = ZSTD_compressBound(plain.count)
        if scratch.count < bound { scratch = [UInt8](repeating: 0, count: bound) }
        var flags: UInt8 = 0
        var payloadLength = plain.count
        let compressed = scratch.withUnsafeMutableBytes { dst -> Int in
            ZSTD_compressCCtx(cctx, dst.baseAddress, bound, plain.baseAddress, plain.count, codec.compressionLevel)
        }
        // Keep compression only when it saves at least 1/32 of the block: random data is stored as is.
        if ZSTD_isError(compressed) == 0, compressed < plain.count - plain.count / 32 {
            flags |= 1
            payloadLength = compressed
        }
        var header = ChunkCodec.magic
        header += [0, 0, 0, 0]
        withUnsafeBytes(of: UInt32(plain.count).littleEndian) { header += $0 }

        func payload<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
            if flags & 1 != 0 {
                return scratch.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[0..<payloadLength])) }
            }
            return body(plain)
        }

        guard let keys = codec.keys else {
            header[4] = flags
            var frame = header
            frame.reserveCapacity(ChunkCodec.headerSize + payloadLength)
            payload { frame.append(contentsOf: $0) }
            return frame
        }
        flags |= 2
        header[4] = flags
        let aad = Self.authenticatedData(header: header, id: id, kind: kind)
        let sealed = payload { bytes in
            try! AES.GCM.seal(bytes, using: keys.encryption, nonce: AES.GCM.Nonce(), authenticating: aad)
        }
        var frame = header
        frame.reserveCapacity(ChunkCodec.headerSize + 12 + payloadLength + 16)
        frame.append(contentsOf: sealed.combined!)
        return frame
    }

    public func encode(_ plain: [UInt8], id: ChunkID, kind: ObjectKind) -> [UInt8] {
        plain.withUnsafeBytes { encode($0, id: id, kind: kind) }
    }

    /// Decodes a stored frame and checks that its plaintext hashes to `id`.
    /// - Throws: `ChunkDamaged` on any mismatch; never returns wrong bytes.
    public func decode(_ frame: [UInt8], id: ChunkID, kind: ObjectKind) throws -> [UInt8] {
        let plain = try decodeUnverified(frame, id: id, kind: kind)
        guard codec.id(of: plain) == id else {
            throw CoffreError.chunkDamaged(id.hex, detail: "content does not match its digest")
        }
        return plain
    }

    private func decodeUnverified(_ frame: [UInt8], id: ChunkID, kind: ObjectKind) throws -> [UInt8] {
        let damaged = { (detail: String) in CoffreError.chunkDamaged(id.hex, detail: detail) }
        guard frame.count >= ChunkCodec.headerSize, Array(frame[0..<4]) == ChunkCodec.magic else {
            throw damaged("bad header")
        }
        let flags = frame[4]
        guard flags & ~3 == 0, frame[5] == 0, frame[6] == 0, frame[7] == 0 else { throw damaged("unknown flags") }
        let length = frame.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self))) }
        var payload = Array(frame[ChunkCodec.headerSize...])
        if flags & 2 != 0 {
            guard let keys = codec.keys else {
                throw CoffreError.encryptionKeyMissing("object \(id.hex) is encrypted")
            }
            let aad = Self.authenticatedData(header: Array(frame[0..<ChunkCodec.headerSize]), id: id, kind: kind)
            do {
                let box = try AES.GCM.SealedBox(combined: payload)
                payload = Array(try AES.GCM.open(box, using: keys.encryption, authenticating: aad))
            } catch {
                throw damaged("authentication failed")
            }
        } else if codec.keys != nil {
            throw damaged("unencrypted object in an encrypted vault")
        }
        if flags & 1 == 0 {
            guard payload.count == length else { throw damaged("length mismatch") }
            return payload
        }
        var plain = [UInt8](repeating: 0, count: length)
        let n = plain.withUnsafeMutableBytes { dst in
            payload.withUnsafeBytes { src in
                ZSTD_decompressDCtx(dctx, dst.baseAddress, length, src.baseAddress, src.count)
            }
        }
        guard ZSTD_isError(n) == 0, n == length else { throw damaged("decompression failed") }
        return plain
    }

    static func authenticatedData(header: [UInt8], id: ChunkID, kind: ObjectKind) -> [UInt8] {
        header + [kind.rawValue] + id.bytes
    }
}
