import CoffreCore
@testable import CoffreStorage
import CoffreTesting
import Testing

/// Seed 004's worked example, block for block: one disk of four 16 KiB blocks.
@Suite struct Seed004Tests {
    static let block = 16 << 10

    /// Disk states after steps 1, 2, 3 (and the on-demand/RP4 steps of case 3).
    struct Example {
        var g = SeededGenerator(seed: 4)
        var disk = [UInt8](repeating: 0, count: 4 * Seed004Tests.block)
        mutating func write(block index: Int) {
            let bytes = g.bytes(Seed004Tests.block)
            disk.replaceSubrange(index * Seed004Tests.block..<(index + 1) * Seed004Tests.block, with: bytes)
        }
    }

    /// Runs steps 1–3; returns the vault, the three points and the disk at each.
    func steps(encrypted: Bool) async throws -> (TestVault, [RecoveryPointManifest], [[UInt8]]) {
        let t = try TestVault(blockSize: Self.block, encrypted: encrypted)
        var e = Example()
        var points: [RecoveryPointManifest] = []
        var states: [[UInt8]] = []

        e.write(block: 0); e.write(block: 1)            // step 1: blocks 1 and 2 → D1, D2
        points.append(try await t.backup("V1", ["disk": e.disk])); states.append(e.disk)
        #expect(try t.storedChunks == 2)

        e.write(block: 2)                                // step 2: block 3 → D3
        points.append(try await t.backup("V1", ["disk": e.disk])); states.append(e.disk)
        #expect(try t.storedChunks == 3)

        e.write(block: 1); e.write(block: 2)             // step 3: blocks 2 and 3 → D2', D3'
        points.append(try await t.backup("V1", ["disk": e.disk])); states.append(e.disk)
        #expect(try t.storedChunks == 5)

        #expect(points.map(\.stats.blocksAdded) == [2, 1, 2])
        return (t, points, states)
    }

    @Test(arguments: [false, true])
    func storageCostPerStep(encrypted: Bool) async throws {
        let (t, points, states) = try await steps(encrypted: encrypted)
        let accounting = try t.vault.accounting()
        // D1 is in all three points; D2 in RP1 and RP2; D3 only in RP2; D2', D3' only in RP3.
        #expect(points.map { accounting[$0.id]!.blocksOnlyHere } == [0, 1, 2])
        for (point, state) in zip(points, states) {
            #expect(try await t.restore(point.id)["disk"] == state)
        }
    }

    @Test(arguments: [false, true])
    func case1InitialPointExpires(encrypted: Bool) async throws {
        let (t, points, states) = try await steps(encrypted: encrypted)
        try t.vault.expire(points[0].id)
        try t.vault.collectGarbage()
        // RP2 still needs D1, D2, D3 (K1 wins over the seed's "D2 is deleted").
        #expect(try t.storedChunks == 5)
        #expect(try await t.restore(points[1].id)["disk"] == states[1])
        #expect(try await t.restore(points[2].id)["disk"] == states[2])
    }

    @Test(arguments: [false, true])
    func case2IntermediatePointExpires(encrypted: Bool) async throws {
        let (t, points, states) = try await steps(encrypted: encrypted)
        let freed = try t.vault.accounting()[points[1].id]!
        #expect(freed.blocksOnlyHere == 1)
        let before = try t.vault.stats().storedBytes
        try t.vault.expire(points[1].id)
        let report = try t.vault.collectGarbage()
        #expect(try t.storedChunks == 4)                 // D3 freed
        #expect(report.removedChunks == 1)
        // What accounting promised is what the collection freed (data and index objects).
        #expect(report.removedBytes == freed.bytesFreedIfExpired)
        #expect(try before - t.vault.stats().storedBytes > 0)
        #expect(try await t.restore(points[0].id)["disk"] == states[0])
        #expect(try await t.restore(points[2].id)["disk"] == states[2])
    }

    @Test(arguments: [false, true])
    func case3OnDemandPointExpires(encrypted: Bool) async throws {
        let (t, points, states) = try await steps(encrypted: encrypted)
        var e = Example(g: SeededGenerator(seed: 40), disk: states[2])
        e.write(block: 3)                                // D4 → on-demand point between RP3 and RP4
        let onDemand = try await t.backup("V1", ["disk": e.disk])
        let onDemandState = e.disk
        e.write(block: 3)                                // D4' overwrites it → RP4
        let rp4 = try await t.backup("V1", ["disk": e.disk])
        #expect(try t.storedChunks == 7)
        #expect(try t.vault.accounting()[onDemand.id]!.blocksOnlyHere == 1)

        try t.vault.expire(onDemand.id)
        try t.vault.collectGarbage()
        #expect(try t.storedChunks == 6)                 // only its overwritten block D4 is freed
        for (point, state) in zip(points, states) {
            #expect(try await t.restore(point.id)["disk"] == state)
        }
        #expect(try await t.restore(rp4.id)["disk"] == e.disk)
        #expect(onDemandState != e.disk)
    }
}
