import CoffreCore
@testable import CoffreStorage
import CoffreTesting
import Foundation
import Testing

@Suite struct ChunkCodecTests {
    static func keys() -> VaultKeys { VaultKeys(master: Array(repeating: 7, count: 32), vaultID: "v") }

    @Test(arguments: [false, true])
    func roundTripsRandomAndCompressibleData(encrypted: Bool) throws {
        let workspace = CodecWorkspace(codec: ChunkCodec(keys: encrypted ? Self.keys() : nil, compressionLevel: 1))
        var g = SeededGenerator(seed: 9)
        for plain in [g.bytes(65536), Array(String(repeating: "coffre ", count: 9000).utf8), [1]] {
            let id = workspace.codec.id(of: plain)
            let frame = workspace.encode(plain, id: id, kind: .chunk)
            #expect(try workspace.decode(frame, id: id, kind: .chunk) == plain)
        }
    }

    @Test func unencryptedIDIsSHA256() throws {
        let codec = ChunkCodec(keys: nil, compressionLevel: 1)
        // SHA-256("abc")
        #expect(codec.id(of: Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(ChunkCodec(keys: Self.keys(), compressionLevel: 1).id(of: Array("abc".utf8)) != codec.id(of: Array("abc".utf8)))
    }

    @Test(arguments: [false, true])
    func everyFlippedByteIsDetected(encrypted: Bool) throws {
        let workspace = CodecWorkspace(codec: ChunkCodec(keys: encrypted ? Self.keys() : nil, compressionLevel: 1))
        var g = SeededGenerator(seed: 10)
        let plain = Array(String(repeating: "block ", count: 500).utf8) + g.bytes(500)
        let id = workspace.codec.id(of: plain)
        let frame = workspace.encode(plain, id: id, kind: .chunk)
        for index in frame.indices {
            var bad = frame
            bad[index] ^= 0x40
            #expect(throws: CoffreError.self) { try workspace.decode(bad, id: id, kind: .chunk) }
        }
        // The same frame is not accepted as another kind of object, nor under another id.
        #expect(throws: CoffreError.self) {
            let other = workspace.codec.id(of: [1, 2, 3])
            _ = try workspace.decode(frame, id: other, kind: .chunk)
        }
        if encrypted {
            #expect(throws: CoffreError.self) { try workspace.decode(frame, id: id, kind: .index) }
        }
    }
}
