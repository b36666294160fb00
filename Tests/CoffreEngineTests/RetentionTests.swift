import CoffreCore
import CoffreEngine
import CoffreTesting
import Foundation
import Testing

/// SPEC section 7: recovery points and retention.
@Suite struct RetentionTests {
    private func utc(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    /// Protects web01 (daily 22:00, 7 days) and takes one scheduled backup a day for `days`
    /// days, changing a different block each day. Returns the points and each day's disk bytes.
    private func dailyBackups(_ h: Harness, days: Int) async throws -> [(RecoveryPointRecord, [String: [UInt8]])] {
        let key = try h.addVM("web01", disks: [512 << 10, 256 << 10])
        try h.write(key, at: 0, pattern(512 << 10, seed: 10))
        try h.write(key, "data1.img", at: 0, pattern(100_000, seed: 11))
        try await h.protect(["web01"])
        var result: [(RecoveryPointRecord, [String: [UInt8]])] = []
        h.clock.set(utc("2026-11-23T22:00:00Z"))
        for day in 0..<days {
            try h.write(key, at: Int64(day) * 16_384, pattern(16_384, seed: 100 + UInt64(day)))
            let jobs = try await h.engine.runDueBackups()
            #expect(jobs.count == 1)
            let job = try await h.succeed(try #require(jobs.first))
            let id = try #require(job.details["point"])
            let point = try #require(try await h.catalog.point(id: id))
            result.append((point, try h.disks(of: key)))
            h.clock.advance(by: 86_400)
        }
        return result
    }

    @Test func K1_eachPointRestoresOnItsOwnWhateverExpiredAroundIt() async throws {
        let h = try await Harness()
        let history = try await dailyBackups(h, days: 4)
        // Expire the 1st and 3rd points by hand: the 2nd and 4th restore exactly.
        try await h.catalog.deletePoints(ids: [history[0].0.id, history[2].0.id])
        try h.vault.expire(history[0].0.id)
        try h.vault.expire(history[2].0.id)
        _ = try h.vault.collectGarbage()
        for index in [1, 3] {
            #expect(try await h.restore("web01", history[index].0.id) == history[index].1)
        }
    }

    @Test func K2_theVaultReportsBlocksAddedAndBlocksOnlyHeldByEachPoint() async throws {
        let h = try await Harness()
        let history = try await dailyBackups(h, days: 3)
        let (_, points, accounting) = try await h.engine.points(of: "web01")
        #expect(points.map(\.id) == history.map(\.0.id))
        // Day 0 stored the whole disk: 32 blocks of os.img and 7 of data1.img (100 000 bytes).
        // Day 1 overwrote block 1 and day 2 block 2, so the first point alone holds the
        // original block 1 (block 2's original is still in day 1's point); day 1's new block 1
        // is kept by day 2; day 2's new block 2 is only in day 2.
        #expect(points.map { accounting[$0.id]?.blocksAdded } == [39, 1, 1])
        #expect(points.map { accounting[$0.id]?.blocksOnlyHere } == [1, 0, 1])
        #expect(accounting[points[1].id]?.bytesFreedIfExpired ?? -1 > 0)  // its index objects
    }

    @Test func K3_cleanupExpiresPointsPastTheirRetentionAndFreesTheirBlocks() async throws {
        let h = try await Harness()
        let history = try await dailyBackups(h, days: 10)  // 7-day retention
        let chunksBefore = try h.vault.stats().storedChunks
        let removed = try await h.engine.runRetention()
        // Now is 10 days after the first slot: the points of days 0–3 are 7 days old or more.
        #expect(removed == history.prefix(4).map(\.0.id))
        let item = try #require(try await h.catalog.items().first)
        #expect(try await h.catalog.points(item: item.id).count == 6)
        #expect(try h.vault.points(item: item.id).count == 6)
        #expect(try h.vault.stats().storedChunks < chunksBefore)
        for (point, disks) in history.suffix(6) {
            #expect(try await h.restore("web01", point.id) == disks)
        }
        #expect(try await h.engine.runRetention().isEmpty)
    }

    @Test func K4_stopProtectionRetainDataKeepsPointsForeverAndResumeReappliesThePolicy() async throws {
        let h = try await Harness()
        let history = try await dailyBackups(h, days: 2)
        let key = VMKey(cloudService: "prod", name: "web01")
        try await h.succeed(try await h.engine.stopProtection("web01", deleteData: false))
        let item = try #require(try await h.catalog.item(for: key))
        #expect(item.state == .stopped)
        #expect(try await h.catalog.points(item: item.id).allSatisfy { $0.expiresAt == nil })
        h.clock.advance(by: 60 * 86_400)
        #expect(try await h.engine.runDueBackups().isEmpty)
        #expect(try await h.engine.runRetention().isEmpty)
        #expect(try await h.restore("web01", history[0].0.id) == history[0].1)
        await expectThrows(.protectionStopped(key)) { _ = try await h.engine.backupNow("web01") }

        try await h.succeed(try await h.engine.resume("web01"))
        #expect(try await h.catalog.item(for: key)?.state == .protected)
        let expiries = try await h.catalog.points(item: item.id).map(\.expiresAt)
        #expect(expiries == history.map { $0.0.takenAt.addingTimeInterval(7 * 86_400) })
        #expect(try await h.engine.runDueBackups().isEmpty)  // slots missed while stopped do not run
        // Retention applies again; the newest point stays as the last one.
        #expect(try await h.engine.runRetention() == [history[0].0.id])
    }

    @Test func K4_deleteDataSoftDeletesForAConfigurablePeriodThenPurges() async throws {
        let h = try await Harness { $0.softDeleteDays = 10 }
        let history = try await dailyBackups(h, days: 2)
        let key = VMKey(cloudService: "prod", name: "web01")
        let job = try await h.succeed(try await h.engine.stopProtection("web01", deleteData: true))
        #expect(job.type == .deleteBackupData)
        let item = try #require(try await h.catalog.item(for: key))
        #expect(item.state == .softDeleted)
        #expect(item.purgeAfter == h.clock.now().addingTimeInterval(10 * 86_400))
        let soft = CoffreError.itemSoftDeleted(key, purgeAfter: Engine.instant(item.purgeAfter!).prefix(10).description)
        await expectThrows(soft) { _ = try await h.engine.restore("web01", point: history[0].0.id, to: .folder(h.folder + "/x")) }

        // Expired points of a soft-deleted item are not cleaned up.
        h.clock.advance(by: 9 * 86_400)
        #expect(try await h.catalog.points(item: item.id).allSatisfy { $0.expiresAt! < h.clock.now() })
        #expect(try await h.engine.runRetention().isEmpty)
        #expect(try await h.catalog.points(item: item.id).count == 2)

        // Undelete: restorable again, protection stopped until resumed.
        try await h.succeed(try await h.engine.undelete("web01"))
        #expect(try await h.catalog.item(for: key)?.state == .stopped)
        #expect(try await h.restore("web01", history[1].0.id) == history[1].1)

        // Delete again and let the period pass: everything is purged.
        try await h.succeed(try await h.engine.stopProtection("web01", deleteData: true))
        h.clock.advance(by: 10 * 86_400 + 1)
        let purged = try await h.engine.runRetention()
        #expect(Set(purged) == Set(history.map(\.0.id)))
        #expect(try await h.catalog.item(for: key) == nil)
        #expect(try await h.catalog.points(item: item.id).isEmpty)
        #expect(try h.vault.points().isEmpty)
        #expect(try h.vault.stats().storedChunks == 0)
        #expect(try await h.engine.jobs(JobFilter(type: .deleteBackupData)).count == 3)
        await expectThrows(.notProtected(key)) { _ = try await h.engine.undelete("web01") }
    }

    @Test func K5_aDeletedVMsBackupsFailWithVMNotFoundItsLastPointNeverExpiresAndItsPointsReattach() async throws {
        let h = try await Harness()
        let history = try await dailyBackups(h, days: 3)
        let key = VMKey(cloudService: "prod", name: "web01")
        let saved = try h.disks(of: key)
        let folder = h.vmFolder(key)
        try FileManager.default.moveItem(atPath: folder, toPath: h.folder + "/deleted-vm")
        let jobs = try await h.engine.runDueBackups()
        let failed = try await h.finish(try #require(jobs.first))
        expectError(failed.error, .vmNotFoundInFabric(key, fabric: "fabric0"))

        // Months later, cleanup removed all but the last point.
        h.clock.advance(by: 90 * 86_400)
        let removed = try await h.engine.runRetention()
        #expect(removed == history.prefix(2).map(\.0.id))
        let item = try #require(try await h.catalog.item(for: key))
        #expect(try await h.catalog.points(item: item.id).map(\.id) == [history[2].0.id])
        #expect(try await h.restore("web01", history[2].0.id) == saved)

        // Restored under the same name and cloud service: the same item, its points attached.
        try FileManager.default.moveItem(atPath: h.folder + "/deleted-vm", toPath: folder)
        try await h.discover()
        let point = try await h.backup("web01")
        #expect(point.item == item.id)
        #expect(try await h.catalog.points(item: item.id).count == 2)
    }

    @Test func K6_churnSpreadOverDisksIsReadInParallelChurnOnOneDiskIsNot() async throws {
        // Seed 004's VM1 (all churn on one disk), VM2 (over four), VM3 (over two), at small scale;
        // the timed comparison is bench/churn.sh. Here: how many disks are read at once.
        let h = try await Harness()
        let shapes: [(String, [Int])] = [("vm1", [0]), ("vm2", [0, 1, 2, 3]), ("vm3", [0, 3])]
        for (name, churned) in shapes {
            let key = try h.addVM(name, disks: [1 << 20, 1 << 20, 1 << 20, 1 << 20])
            let disks = ["os.img", "data1.img", "data2.img", "data3.img"]
            // The same churn in total, spread over the churned disks.
            for index in churned {
                try h.write(key, disks[index], at: 0, pattern((1 << 20) / churned.count, seed: UInt64(index)))
            }
        }
        try await h.protect(shapes.map(\.0))
        var concurrency: [String: Int] = [:]
        for (name, churned) in shapes {
            // Where several disks hold data, reads wait for a second disk to be read at once
            // (up to 10 s): a serial pipeline fails, a slow machine does not.
            h.fabric.set { $0.maxConcurrentDisks = 0; $0.awaitConcurrentDisks = churned.count > 1 ? 2 : nil }
            _ = try await h.backup(name)
            concurrency[name] = h.fabric.get(\.maxConcurrentDisks)
        }
        #expect(concurrency["vm1"] == 1)
        #expect(concurrency["vm2"]! >= 2)
        #expect(concurrency["vm3"]! >= 2)
    }
}
