import CoffreCore
import Foundation
import Testing

@Suite("Catalog copy format")
struct CatalogCopyFormatTests {
    private let vm = VMKey(cloudService: "prod", name: "web01")

    private func point(_ id: String, item: String = "item-1", at seconds: Double, definition: String? = nil) -> RecoveryPointRecord {
        RecoveryPointRecord(id: id, item: item, vm: vm, takenAt: Date(timeIntervalSince1970: seconds), type: .scheduled,
                            consistency: .applicationConsistent, expiresAt: Date(timeIntervalSince1970: seconds + 86_400),
                            disks: [VirtualDisk(name: "os", size: 1 << 20, isOSDisk: true)], stats: PointStats(bytesRead: 7),
                            guest: GuestOutcome(reason: "scripts ran"), job: "job-\(id)", definition: definition)
    }

    private func stored(_ id: String, item: String = "item-1", at seconds: Double) -> StoredPoint {
        StoredPoint(id: id, item: item, time: Date(timeIntervalSince1970: seconds),
                    disks: [.init(name: "os", size: 1 << 20), .init(name: "data", size: 2 << 20)],
                    bytesRead: 3 << 20, bytesWritten: 1000, blocksAdded: 5, blocksChanged: 2, seconds: 0.5, base: nil)
    }

    private func copy(points: [RecoveryPointRecord], jobs: [Job] = []) -> CatalogCopy {
        var snapshot = CatalogSnapshot()
        snapshot.items = [ProtectedItem(id: "item-1", vm: vm, policy: "daily", state: .protected,
                                        protectedAt: Date(timeIntervalSince1970: 0))]
        snapshot.points = points
        snapshot.jobs = jobs
        return CatalogCopy(takenAt: Date(timeIntervalSince1970: 1000.25), takenBy: "node-a", coffreVersion: "1.0",
                           snapshot: snapshot)
    }

    @Test func aCopyReadsBackEqualWithTheDefinitionsItsPointsDoNotEncode() throws {
        let original = copy(points: [point("rp-1", at: 100.125, definition: "<domain>…</domain>"), point("rp-2", at: 200)])
        let bytes = try original.encoded()
        let read = try CatalogCopy.decode(bytes, name: "x")
        #expect(read == original)
        #expect(read.snapshot.points[0].definition == "<domain>…</domain>")
        #expect(read.snapshot.points[1].definition == nil)
    }

    @Test func whatIsNotACopyIsRefusedByName() throws {
        #expect(throws: CoffreError.self) { _ = try CatalogCopy.decode(Array("{\"format\":\"other\"}".utf8), name: "n1") }
        var newer = try JSONSerialization.jsonObject(with: Data(try copy(points: []).encoded())) as! [String: Any]
        newer["version"] = 2
        let bytes = Array(try JSONSerialization.data(withJSONObject: newer))
        do {
            _ = try CatalogCopy.decode(bytes, name: "n2")
            Issue.record("a copy of a newer format was read")
        } catch let error as CoffreError {
            #expect(error.code == .vaultFormatUnsupported && error.message.contains("n2"))
        }
    }

    @Test func namesCarryTheirTimeToTheMillisecondAndSortByIt() throws {
        let early = Date(timeIntervalSince1970: 1_796_000_000.125)
        let late = early.addingTimeInterval(0.001)
        let a = StoredCatalogCopy.makeName(at: early)
        let b = StoredCatalogCopy.makeName(at: late)
        #expect(a < b)
        #expect(try #require(StoredCatalogCopy.time(ofName: a)).timeIntervalSince(early).magnitude < 0.0005)
        for bad in ["", "20261122T101530-3f9a1c2b", "20261122T101530.12-3f9a1c2b", "20261122T101530.123-3f9a1c2", "../x", "20261122T101530.123-3f9a1c2z"] {
            #expect(StoredCatalogCopy.time(ofName: bad) == nil, "\(bad)")
        }
    }

    @Test func retentionKeepsTheNewestAndOnePerDayAndNeverNothing() {
        func copy(_ day: Int, _ minute: Int) -> StoredCatalogCopy {
            let date = Date(timeIntervalSince1970: 1_796_000_000 + Double(day * 86_400 + minute * 60))
            return StoredCatalogCopy(name: StoredCatalogCopy.makeName(at: date), takenAt: date, size: 1)
        }
        let copies = (0..<20).flatMap { day in (0..<3).map { copy(day, $0) } }
        let kept = StoredCatalogCopy.kept(copies, recent: 4, days: 5)
        let newestFirst = copies.sorted { $0.name > $1.name }.map(\.name)
        // 4 newest (days 19 and 18), then the newest of days 17, 16, 15 (5 days with 19 and 18).
        #expect(kept == Set(newestFirst.prefix(4) + [newestFirst[6], newestFirst[9], newestFirst[12]]))
        #expect(StoredCatalogCopy.kept(Array(copies.prefix(1)), recent: 0, days: 0) == [copies[0].name])
        #expect(StoredCatalogCopy.kept([]).isEmpty)
    }

    @Test func thePlanDropsWhatTheVaultLostAdoptsWhatTheCopyPredatesAndEndsRunningJobs() {
        let running = Job(id: "job-running", type: .backup, status: .inProgress, vm: vm,
                          startedAt: Date(timeIntervalSince1970: 900), owner: "node-a")
        let old = copy(points: [point("rp-1", at: 100), point("rp-2", at: 200)], jobs: [running])
        let stored = [stored("rp-2", at: 200), stored("rp-3", at: 300), stored("rp-0", at: 50), stored("rp-x", item: "item-9", at: 400)]
        let plan = CatalogRestorePlan(copy: old, stored: stored, at: Date(timeIntervalSince1970: 5000))
        #expect(plan.dropped.map(\.id) == ["rp-1"])
        #expect(plan.adopted.map(\.id) == ["rp-3", "rp-0"])
        #expect(plan.snapshot.points.map(\.id) == ["rp-0", "rp-2", "rp-3"], "per item, oldest first")
        #expect(plan.unknownItems == ["item-9": ["rp-x"]])
        let adopted = plan.adopted[0]
        #expect(adopted.vm == vm && adopted.item == "item-1" && adopted.takenAt == Date(timeIntervalSince1970: 300))
        #expect(adopted.expiresAt == nil && adopted.retainUntil == nil && adopted.type == .onDemand)
        #expect(adopted.consistency == .crashConsistent)
        #expect(adopted.disks.map(\.name) == ["os", "data"] && adopted.disks.map(\.isOSDisk) == [true, false])
        #expect(adopted.stats == PointStats(bytesRead: 3 << 20, bytesWritten: 1000, blocksAdded: 5, blocksChanged: 2, seconds: 0.5))
        #expect(plan.endedJobs == ["job-running"])
        let ended = plan.snapshot.jobs[0]
        #expect(ended.status == .failed && ended.error?.code == .jobInterrupted && ended.endedAt == Date(timeIntervalSince1970: 5000))
    }
}
