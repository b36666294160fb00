import CoffreCore
import Foundation
import Testing

/// Policies, protected items and recovery points, on every catalog.
extension CatalogConformance {
    static func policyNamesAreUnique(_ catalog: any Catalog) async throws {
        try await catalog.insertPolicy(CatalogSample.policy("gold", days: 30))
        await expectError(.policyAlreadyExists) { try await catalog.insertPolicy(CatalogSample.policy("gold", days: 7)) }
        #expect(try await catalog.policy(named: "gold") == CatalogSample.policy("gold", days: 30))
    }

    static func updatePolicyReplacesItOrThrowsPolicyNotFound(_ catalog: any Catalog) async throws {
        await expectError(.policyNotFound) { try await catalog.updatePolicy(CatalogSample.policy("gold")) }
        #expect(try await catalog.policy(named: "gold") == nil)

        try await catalog.insertPolicy(CatalogSample.policy("gold"))
        let daily = Policy(name: "gold", schedule: .daily(at: TimeOfDay(hour: 6, minute: 0)), retention: Retention(days: 9999))
        try await catalog.updatePolicy(daily)
        #expect(try await catalog.policy(named: "gold") == daily)
    }

    static func policiesAreSortedByName(_ catalog: any Catalog) async throws {
        for name in ["silver", "Gold", "bronze"] { try await catalog.insertPolicy(CatalogSample.policy(name)) }
        #expect(try await catalog.policies().map(\.name) == ["Gold", "bronze", "silver"])
    }

    static func saveItemInsertsOrReplacesByIDWithOneItemPerVM(_ catalog: any Catalog) async throws {
        let web = CatalogSample.key("web"), db = CatalogSample.key("db", in: "cs2")
        try await catalog.saveItem(CatalogSample.item("item-web", vm: web))
        try await catalog.saveItem(CatalogSample.item("item-db", vm: db))
        var stopped = CatalogSample.item("item-web", vm: web, state: .softDeleted)
        stopped.softDeletedAt = CatalogSample.at(10.5)
        stopped.purgeAfter = CatalogSample.at(14 * 86400.5)
        try await catalog.saveItem(stopped)

        let error = await expectError(.alreadyProtected) {
            try await catalog.saveItem(CatalogSample.item("item-web-2", vm: web, policy: "silver"))
        }
        #expect(error?.message.contains("'gold'") == true, "names the policy already protecting the VM")

        #expect(try await catalog.item(id: "item-web") == stopped)
        #expect(try await catalog.item(for: web) == stopped)
        #expect(try await catalog.item(id: "item-web-2") == nil)
        #expect(try await catalog.item(for: CatalogSample.key("web", in: "other")) == nil)
        #expect(try await catalog.items().map(\.id) == ["item-db", "item-web"], "sorted by VM name")

        let moved = CatalogSample.item("item-db", vm: CatalogSample.key("db2"))
        try await catalog.saveItem(moved)
        #expect(try await catalog.item(for: db) == nil, "an item may move to a VM no other item holds")
        #expect(try await catalog.item(for: CatalogSample.key("db2")) == moved)
    }

    static func verificationsAreRecordedWithoutTouchingAnythingElse(_ catalog: any Catalog) async throws {
        var policy = CatalogSample.policy("gold")
        policy.verification = VerificationPolicy(schedule: .weekly(on: [.sunday], at: TimeOfDay(hour: 4, minute: 0)),
                                                 checks: [.data, .boot], bootCommand: "test -f /ok", bootTimeoutSeconds: 120)
        try await catalog.insertPolicy(policy)
        #expect(try await catalog.policy(named: "gold") == policy)

        let web = CatalogSample.item("item-web", vm: CatalogSample.key("web"))
        try await catalog.commitPoint(CatalogSample.point("p1", of: web, takenAt: CatalogSample.at(1)), item: web)
        // The item changed since the scheduler read it: recording its slot keeps the change.
        try await catalog.saveItem(CatalogSample.item("item-web", vm: CatalogSample.key("web"), state: .stopped))
        try await catalog.recordVerificationSlot(CatalogSample.at(5), item: "item-web")
        let item = try #require(try await catalog.item(id: "item-web"))
        #expect(item.state == .stopped && item.lastVerificationSlot == CatalogSample.at(5))
        try await catalog.recordVerificationSlot(CatalogSample.at(6), item: "gone")

        let verification = PointVerification(at: CatalogSample.at(7), checks: [.data], succeeded: false, job: "job-v",
                                             detail: "2 disks", error: ErrorInfo(code: .dataVerificationFailed, message: "damaged"))
        try await catalog.recordVerification(verification, point: "p1")
        #expect(try await catalog.point(id: "p1")?.verification == verification)
        // A copy of the point read before the verification does not erase it.
        var stale = CatalogSample.point("p1", of: web, takenAt: CatalogSample.at(1))
        stale.expiresAt = CatalogSample.at(100)
        try await catalog.updatePoints([stale])
        let point = try #require(try await catalog.point(id: "p1"))
        #expect(point.expiresAt == CatalogSample.at(100) && point.verification == verification)
        try await catalog.recordVerification(verification, point: "gone")
    }

    static func deleteItemRemovesItAndItsPointsOnly(_ catalog: any Catalog) async throws {
        let web = CatalogSample.item("item-web", vm: CatalogSample.key("web")), db = CatalogSample.item("item-db", vm: CatalogSample.key("db"))
        try await catalog.commitPoint(CatalogSample.point("p1", of: web, takenAt: CatalogSample.at(1)), item: web)
        try await catalog.commitPoint(CatalogSample.point("p2", of: web, takenAt: CatalogSample.at(2)), item: web)
        try await catalog.commitPoint(CatalogSample.point("p3", of: db, takenAt: CatalogSample.at(3)), item: db)

        try await catalog.deleteItem(id: web.id)
        #expect(try await catalog.item(id: web.id) == nil)
        #expect(try await catalog.points(item: web.id).isEmpty)
        #expect(try await catalog.point(id: "p1") == nil)
        #expect(try await catalog.points(item: db.id).map(\.id) == ["p3"])
        try await catalog.deleteItem(id: "unknown")
    }

    static func commitPointRecordsThePointAndSavesItsItem(_ catalog: any Catalog) async throws {
        var item = CatalogSample.item("item-web", vm: CatalogSample.key("web"))
        try await catalog.saveItem(item)
        item.lastScheduledSlot = CatalogSample.at(86400.5)
        let point = CatalogSample.point("p1", of: item, takenAt: CatalogSample.at(86401.25))
        try await catalog.commitPoint(point, item: item)
        #expect(try await catalog.item(id: item.id) == item)
        #expect(try await catalog.point(id: "p1") == point)
    }

    static func commitPointThatCannotSaveItsItemRecordsNothing(_ catalog: any Catalog) async throws {
        try await catalog.saveItem(CatalogSample.item("item-web", vm: CatalogSample.key("web")))
        let intruder = CatalogSample.item("item-other", vm: CatalogSample.key("web"))
        await expectError(.alreadyProtected) {
            try await catalog.commitPoint(CatalogSample.point("p1", of: intruder, takenAt: CatalogSample.t0), item: intruder)
        }
        #expect(try await catalog.point(id: "p1") == nil)
        #expect(try await catalog.item(id: "item-other") == nil)
    }

    static func pointsComeOldestFirstAndRoundTripExactly(_ catalog: any Catalog) async throws {
        let item = CatalogSample.item("item-web", vm: CatalogSample.key("web"))
        let points = (0..<20).map { index in
            // Dates spread from 2001 to 2070 by the golden ratio, with every bit of their
            // fractions set by the multiplication: each must come back bit for bit.
            let spread = (Double(index) * 0.618_033_988_749_895).truncatingRemainder(dividingBy: 1)
            let date = Date(timeIntervalSinceReferenceDate: spread * 2_200_000_000)
            var point = CatalogSample.point("p\(index)", of: item, takenAt: date)
            point.retainUntil = index.isMultiple(of: 2) ? date.addingTimeInterval(0.1) : nil
            point.type = index.isMultiple(of: 3) ? .onDemand : .scheduled
            return point
        }
        for point in points { try await catalog.commitPoint(point, item: item) }
        #expect(try await catalog.points(item: item.id) == points.sorted { $0.takenAt < $1.takenAt })
        #expect(try await catalog.points(item: "other").isEmpty)
        #expect(try await catalog.point(id: "p7") == points[7])
    }

    static func updatePointsReplacesKnownPointsOnly(_ catalog: any Catalog) async throws {
        let item = CatalogSample.item("item-web", vm: CatalogSample.key("web"))
        var p1 = CatalogSample.point("p1", of: item, takenAt: CatalogSample.at(1))
        let p2 = CatalogSample.point("p2", of: item, takenAt: CatalogSample.at(2))
        try await catalog.commitPoint(p1, item: item)
        try await catalog.commitPoint(p2, item: item)

        p1.expiresAt = nil
        p1.tags = []
        let unknown = CatalogSample.point("p9", of: item, takenAt: CatalogSample.at(9))
        try await catalog.updatePoints([p1, unknown])
        #expect(try await catalog.points(item: item.id) == [p1, p2])
    }

    static func deletePointsRemovesThoseIDs(_ catalog: any Catalog) async throws {
        let item = CatalogSample.item("item-web", vm: CatalogSample.key("web"))
        for index in 1...4 {
            try await catalog.commitPoint(CatalogSample.point("p\(index)", of: item, takenAt: CatalogSample.at(Double(index))), item: item)
        }
        try await catalog.deletePoints(ids: ["p1", "p3", "unknown"])
        try await catalog.deletePoints(ids: [])
        #expect(try await catalog.points(item: item.id).map(\.id) == ["p2", "p4"])
        #expect(try await catalog.item(id: item.id) != nil)
    }
}
