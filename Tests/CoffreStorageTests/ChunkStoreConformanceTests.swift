import CoffreCore
@testable import CoffreStorage
import CoffreTesting
import Foundation
import Testing

/// The shared `ChunkStore` contract on both stores of this module.
@Suite struct ChunkStoreConformanceTests {
    static let names = ChunkStoreConformance.checks.map(\.name)

    @Test(arguments: names)
    func memoryStore(_ check: String) throws {
        try ChunkStoreConformance.checks.first { $0.name == check }!.run(MemoryChunkStore())
    }

    @Test(arguments: names)
    func localStore(_ check: String) throws {
        let folder = NSTemporaryDirectory() + "coffre-store-\(UUID().uuidString)"
        try LocalChunkStore.createLayout(at: folder)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try ChunkStoreConformance.checks.first { $0.name == check }!.run(LocalChunkStore(root: folder))
    }

    @Test func localPutsLeaveNoTemporaryFiles() throws {
        let folder = NSTemporaryDirectory() + "coffre-store-\(UUID().uuidString)"
        try LocalChunkStore.createLayout(at: folder)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = LocalChunkStore(root: folder)
        try store.put("a/b", [1, 2, 3], mode: .create)
        #expect(try !store.put("a/b", [4], mode: .create))
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder + "/tmp").isEmpty)
        // A temporary file of a process that is gone is removed when the store is opened.
        FileManager.default.createFile(atPath: folder + "/tmp/999999999-1-abcdef", contents: Data([1]))
        _ = LocalChunkStore(root: folder)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder + "/tmp").isEmpty)
    }
}
