import CoffreCore
import CoffreEngine
import CoffreSQLite
import CoffreStorage
import CoffreTesting
import Foundation
import Testing

/// Copies of the catalog in the vault (decision 0030): written after jobs, kept by retention,
/// and brought back so that every point the vault holds survives the sweep for uncommitted points.
@Suite("Catalog copies in the vault")
struct CatalogCopyTests {
    @Test func aCopyIsWrittenAfterEveryJobAndHoldsTheWholeCatalog() async throws {
        let h = try await Harness()
        try await h.protectedVM("web01")
        let point = try await h.backup("web01")
        let copies = try await h.engine.store.catalogCopies()
        #expect(copies.count >= 4, "discovery, registration, policy, protection and backup each wrote one: \(copies.map(\.name))")
        let newest = try #require(copies.last)
        let copy = try CatalogCopy.decode(try await h.engine.store.readCatalogCopy(newest.name), name: newest.name)
        #expect(copy.snapshot == (try await h.catalog.snapshot()))
        #expect(copy.snapshot.points.map(\.id) == [point.id])
        #expect(copy.snapshot.points.first?.definition == point.definition, "the VM's definition travels with the point")
        #expect(copy.takenBy == "test")
    }

    @Test func aCopyKeepsAMonthOfJobsAndThoseThatMadeItsPoints() async throws {
        let h = try await Harness()
        try await h.protectedVM("web01")
        let point = try await h.backup("web01")
        h.clock.advance(by: 40 * 86_400)
        let verify = try await h.succeed(try await h.engine.verify("web01", point: point.id, .init(checks: [.data])))
        let saved = try await h.engine.saveCatalogCopy()
        let copy = try CatalogCopy.decode(try await h.engine.store.readCatalogCopy(saved.name), name: saved.name)
        let all = try await h.catalog.jobs(JobFilter())
        #expect(all.count > 3)
        #expect(Set(copy.snapshot.jobs.map(\.id)) == [point.job, verify.id], "\(copy.snapshot.jobs.map(\.type))")
        #expect(copy.snapshot.points.map(\.id) == [point.id])
    }

    @Test func retentionKeepsTheNewestTenAndOnePerDay() async throws {
        let h = try await Harness { $0.catalogCopyInterval = .seconds(3600) }
        var names: [String] = []
        for _ in 0..<3 {
            for _ in 0..<12 {
                h.clock.advance(by: 60)
                names.append(try await h.engine.saveCatalogCopy().name)
            }
            h.clock.advance(by: 24 * 3600)
        }
        let kept = try await h.engine.store.catalogCopies().map(\.name)
        // The newest 10 (all of the last day), and the newest of each earlier day.
        #expect(kept == [names[11], names[23]] + names.suffix(10))
        await expectThrows(.catalogCopyNotFound(names[0], vault: h.vault.path)) {
            _ = try await h.engine.store.readCatalogCopy(names[0])
        }
    }

    /// The sweep for uncommitted points (decision 0025) expires what the catalog does not list.
    /// A catalog restored from a copy older than the vault's newest points must therefore list
    /// them, or the sweep would delete real backups: this tries to make it do so.
    @Test func aRestoredOlderCopyAdoptsNewerPointsAndTheSweepKeepsEveryOne() async throws {
        let h = try await Harness()
        let web = try await h.protectedVM("web01", seed: 1)
        try await h.protectedVM("db01", seed: 2)
        let p1 = try await h.backup("web01")
        h.clock.advance(by: 3600)
        try h.write(web, at: 8192, pattern(20_000, seed: 3))
        let p2 = try await h.backup("web01")
        let p2Disks = try h.disks(of: web)
        let dbPoint = try await h.backup("db01")
        // A job the copy will show running.
        let stale = Job(id: "job-stale", type: .backup, status: .inProgress, vm: web, startedAt: h.clock.now(), owner: "gone")
        _ = try await h.catalog.insertJob(stale, lock: nil)
        let older = try await h.engine.saveCatalogCopy()
        var ended = stale
        ended.status = .failed
        ended.endedAt = h.clock.now()
        try await h.catalog.updateJob(ended)

        // After the copy: another point, an expiry, and a VM protected for the first time.
        h.clock.advance(by: 3600)
        try h.write(web, at: 0, pattern(4096, seed: 4))
        let p3 = try await h.backup("web01")
        let p3Disks = try h.disks(of: web)
        try await h.catalog.deletePoints(ids: [p1.id])
        try await h.engine.store.expirePoint(p1.id)
        let newVM = try await h.protectedVM("new01", seed: 5)
        let newPoint = try await h.backup("new01")

        // The disaster: the catalog is lost; the older copy comes back into an empty one.
        let copy = try CatalogCopy.decode(try await h.engine.store.readCatalogCopy(older.name), name: older.name)
        let plan = CatalogRestorePlan(copy: copy, stored: try await h.engine.store.storedPoints(item: nil), at: h.clock.now())
        #expect(plan.dropped.map(\.id) == [p1.id])
        #expect(plan.adopted.map(\.id) == [p3.id])
        let newItem = try #require(try await h.catalog.item(for: newVM))
        #expect(plan.unknownItems == [newItem.id: [newPoint.id]])
        #expect(plan.endedJobs == [stale.id])
        let restored = try SQLiteCatalog(path: h.folder + "/restored.sqlite")
        try await restored.importSnapshot(plan.snapshot)
        #expect(try await restored.snapshot() == plan.snapshot)

        // A new process on the restored catalog: recovery, retention and the sweep, twice.
        let engine = Engine(configuration: Engine.Configuration(region: Harness.region), catalog: restored,
                            store: VaultPointStore(h.vault), fabrics: h.fabrics, clock: h.clock, owner: "after",
                            isOwnerAlive: { $0 == "after" })
        try await engine.start()
        for _ in 0..<2 {
            _ = try await engine.runRetention()
            try await engine.expireOrphans()
        }
        let stored = Set(try await engine.store.storedPoints(item: nil).map(\.id))
        #expect(stored == [p2.id, p3.id, dbPoint.id, newPoint.id], "the sweep took a point the vault held")
        let webItem = try #require(try await restored.item(for: web))
        let listed = try await restored.points(item: webItem.id)
        #expect(listed.map(\.id) == [p2.id, p3.id])
        let adopted = try #require(listed.last)
        #expect(adopted.consistency == .crashConsistent && adopted.expiresAt == nil && adopted.type == .onDemand)
        let job = try #require(try await restored.job(id: stale.id))
        #expect(job.status == .failed && job.error?.code == .jobInterrupted)

        // Both points restore byte for byte through the new engine.
        for (point, expected) in [(p2, p2Disks), (p3, p3Disks)] {
            let target = h.folder + "/restore-\(point.id)"
            let final = try await engine.wait(for: try await engine.restore("web01", point: point.id, to: .folder(target)).id)
            #expect(final.status == .succeeded, "\(final.error.map(\.description) ?? "")")
            for (name, bytes) in expected { #expect(try h.read(target + "/" + name) == bytes, "\(point.id) \(name)") }
        }

        // The control: the same copy restored as it was, without adoption, and the sweep does
        // take the newer point. The check above can fail.
        let raw = try SQLiteCatalog(path: h.folder + "/raw.sqlite")
        var rawSnapshot = copy.snapshot
        rawSnapshot.points.removeAll { $0.id == p1.id }
        rawSnapshot.jobs.removeAll { !$0.status.isFinished }
        try await raw.importSnapshot(rawSnapshot)
        let careless = Engine(configuration: Engine.Configuration(region: Harness.region), catalog: raw,
                              store: VaultPointStore(h.vault), fabrics: h.fabrics, clock: h.clock, owner: "careless",
                              isOwnerAlive: { $0 == "careless" })
        try await careless.expireOrphans()
        #expect(!(try await careless.store.storedPoints(item: nil).map(\.id)).contains(p3.id))
    }

    @Test func aCatalogThatHoldsRecordsRefusesAnImport() async throws {
        let h = try await Harness()
        try await h.protectedVM("web01")
        let before = try await h.catalog.snapshot()
        do {
            try await h.catalog.importSnapshot(before)
            Issue.record("an import into a catalog holding records was accepted")
        } catch let error as CoffreError {
            #expect(error.code == .catalogNotEmpty)
        }
        #expect(try await h.catalog.snapshot() == before, "nothing was written")
    }

    @Test func aCopyInAnEncryptedVaultIsSealedAndVerified() async throws {
        let folder = NSTemporaryDirectory() + "coffre-copy-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let vault = try Vault.create(at: folder + "/vault", blockSize: 16 << 10, encryptionKeyFile: folder + "/key")
        var snapshot = CatalogSnapshot()
        snapshot.policies = [Policy(name: "a-very-telling-policy-name", schedule: .daily(at: TimeOfDay(hour: 1, minute: 0)),
                                    retention: Retention(days: 3))]
        let copy = CatalogCopy(takenAt: Date(), takenBy: "test", coffreVersion: "test", snapshot: snapshot)
        let name = StoredCatalogCopy.makeName(at: copy.takenAt)
        try vault.saveCatalogCopy(try copy.encoded(), name: name)
        let file = folder + "/vault/catalog/" + name
        var sealed = try Data(contentsOf: URL(fileURLWithPath: file))
        #expect(sealed.range(of: Data("a-very-telling-policy-name".utf8)) == nil, "the copy is stored in clear")
        #expect(try CatalogCopy.decode(try vault.readCatalogCopy(name), name: name) == copy)
        // One flipped bit: the copy is refused, not read wrong.
        sealed[sealed.count - 10] ^= 0x01
        try sealed.write(to: URL(fileURLWithPath: file))
        do {
            _ = try vault.readCatalogCopy(name)
            Issue.record("a damaged copy was read")
        } catch let error as CoffreError {
            #expect(error.code == .chunkDamaged)
        }
    }
}
