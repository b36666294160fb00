import CoffreCore
import CoffreEngine
import CoffreTesting
import Foundation
import Testing

/// The seed's Verify job: a point's data read back and checked, the outcome recorded on the
/// point, on demand and on a policy's own schedule.
@Suite struct VerifyTests {
    /// Every file under the vault's packs folder.
    static func packs(_ h: Harness) -> Set<String> {
        let root = h.folder + "/vault/packs"
        let files = FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String } ?? []
        return Set(files.map { root + "/" + $0 }.filter { !isDirectory($0) })
    }

    @Test func aFlippedByteInAChunkFailsTheDataVerificationOfThePointsUsingItAndNamesThePoint() async throws {
        let h = try await Harness()
        let key = try h.addVM("web01")
        try h.write(key, at: 0, pattern(200_000, seed: 21))
        try await h.protect(["web01"])
        let first = try await h.backup("web01")
        let before = Self.packs(h)
        try h.write(key, at: 5 * 16_384, pattern(16_384, seed: 22))  // one new block
        h.clock.advance(by: 60)  // the newest point is the second
        let second = try await h.backup("web01")
        let added = Self.packs(h).subtracting(before)
        #expect(added.count == 1, "\(added)")

        // Intact: both pass, and the outcome is on each point.
        for point in [first, second] {
            let job = try await h.succeed(try await h.engine.verify("web01", point: point.id, .init(checks: [.data])))
            #expect(job.details["verified"] == "passed")
            let verification = try #require(try await h.catalog.point(id: point.id)?.verification)
            #expect(verification.succeeded && verification.checks == [.data] && verification.job == job.id)
            #expect(verification.detail.contains("every block's hash checked"), "\(verification.detail)")
        }

        // The new block is the first object of the pack the second backup wrote (its frame
        // header is 12 bytes): one byte flipped in its middle.
        let victim = try #require(added.first)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: victim))
        bytes[12 + 8_192] ^= 0x5A
        try bytes.write(to: URL(fileURLWithPath: victim))

        let failed = try await h.finish(try await h.engine.verify("web01", point: nil, .init(checks: [.data])))
        #expect(failed.status == .failed)
        #expect(failed.error?.code == .dataVerificationFailed)
        #expect(failed.error?.message.contains(second.id) == true, "\(failed.error?.message ?? "")")
        #expect(failed.details["verified"] == "failed")
        let recorded = try #require(try await h.catalog.point(id: second.id)?.verification)
        #expect(!recorded.succeeded && recorded.error?.code == .dataVerificationFailed && recorded.job == failed.id)
        // The first point does not use that block: it still passes.
        _ = try await h.succeed(try await h.engine.verify("web01", point: first.id, .init(checks: [.data])))
        // The dashboard counts what failed.
        #expect(try await h.engine.dashboard().verificationsFailed == 1)
    }

    @Test func aBootCheckNeedsAFabricThatRunsPointsAndChecksAreValidated() async throws {
        let h = try await Harness()
        try await h.protectedVM("web01")
        let point = try await h.backup("web01")
        // The local fabric cannot run a point: refused before any job starts.
        await expectCode(.restoreNotSupported) {
            _ = try await h.engine.verify("web01", point: point.id, .init(checks: [.data, .boot]))
        }
        #expect(try await h.engine.jobs(JobFilter(type: .verify)).isEmpty)
        await expectCode(.invalidArgument) {
            _ = try await h.engine.verify("web01", point: nil, .init(checks: []))
        }
        await expectCode(.invalidArgument) {
            _ = try await h.engine.verify("web01", point: nil, .init(checks: [.boot], bootTimeoutSeconds: 1))
        }
        await expectCode(.pointNotFound) {
            _ = try await h.engine.verify("web01", point: "rp-nope", .init(checks: [.data]))
        }
    }

    @Test func aPolicyVerifiesItsItemsNewestPointsOncePerSlot() async throws {
        let h = try await Harness()
        let verification = VerificationPolicy(schedule: .daily(at: TimeOfDay(hour: 9, minute: 0)), checks: [.data])
        try await h.engine.createPolicy(Policy(name: "verified", schedule: .daily(at: TimeOfDay(hour: 22, minute: 0)),
                                               retention: Retention(days: 7), verification: verification))
        #expect(try await h.engine.policies().first { $0.name == "verified" }?.verification == verification)
        let web = try h.addVM("web01")
        _ = try h.addVM("db01")
        try h.write(web, at: 0, pattern(40_000, seed: 23))
        try await h.protect(["web01", "db01"], policy: try await h.catalog.policy(named: "verified"))
        _ = try await h.backup("web01")
        h.clock.advance(by: 60)
        let newest = try await h.backup("web01")

        #expect(try await h.engine.queueDueVerifications().isEmpty, "08:00: the 09:00 slot has not come")
        h.clock.advance(by: 3600 + 60)
        let jobs = try await h.engine.queueDueVerifications()
        #expect(jobs.count == 1, "db01 has no point yet: nothing to verify")
        let job = try await h.succeed(try #require(jobs.first))
        #expect(job.details["point"] == newest.id && job.details["trigger"] == "scheduled")
        #expect(try await h.catalog.point(id: newest.id)?.verification?.succeeded == true)
        #expect(try await h.engine.queueDueVerifications().isEmpty, "one job per slot")
        h.clock.advance(by: 86_400)
        #expect(try await h.engine.queueDueVerifications().count == 1)
    }

    @Test func verificationsWaitQueuedBeyondTheNodesPlacesAndAnyNodeRunsThemFromTheirRecord() async throws {
        let h = try await Harness { $0.maxConcurrentVerifications = 1 }
        let verification = VerificationPolicy(schedule: .daily(at: TimeOfDay(hour: 9, minute: 0)), checks: [.data])
        let policy = Policy(name: "verified", schedule: .daily(at: TimeOfDay(hour: 22, minute: 0)), retention: Retention(days: 7),
                            verification: verification)
        let names = ["a", "b", "c"]
        for (i, name) in names.enumerated() { try h.write(try h.addVM(name), at: 0, pattern(40_000, seed: 30 + UInt64(i))) }
        try await h.protect(names, policy: policy)
        var points: [String: RecoveryPointRecord] = [:]
        for name in names { points[name] = try await h.backup(name) }
        h.clock.advance(by: 3600 + 60)
        // Queued, not run: every detail a node needs to run them is in the record.
        let queued = try await h.engine.queueDueVerifications()
        #expect(queued.count == 3 && queued.allSatisfy { $0.status == .queued })
        for job in queued {
            #expect(job.details["checks"] == "data" && job.details["trigger"] == "scheduled" && job.details["slot"] != nil)
            #expect(job.details["point"] == points[job.vm!.name]?.id && job.details["fabric"] == "fabric0")
        }
        // One place: a claim takes one of them, the others wait.
        await h.engine.runQueuedJobs()
        let claimed = try await h.catalog.jobs(JobFilter(type: .verify)).filter { $0.status != .queued }
        #expect(claimed.count == 1, "\(claimed.map(\.status))")
        #expect(try await h.catalog.jobs(JobFilter(type: .verify, status: .queued)).count == 2)
        // A restarted node, with nothing of them in memory, runs the rest from their records.
        try await h.reconfigure { $0.maxConcurrentVerifications = 1 }
        for job in queued {
            let final = try await h.succeed(job)
            #expect(final.details["verified"] == "passed" && final.details["claimedAt"] != nil)
            #expect(try await h.catalog.point(id: final.details["point"]!)?.verification?.job == job.id)
        }
    }

    @Test func aQueuedVerificationWhosePointExpiredMeanwhileFailsWithPointNotFound() async throws {
        let h = try await Harness { $0.maxConcurrentVerifications = 1 }
        try await h.protectedVM("web01")
        let point = try await h.backup("web01")
        let verification = VerificationPolicy(schedule: .daily(at: TimeOfDay(hour: 9, minute: 0)), checks: [.data])
        let item = try #require(try await h.catalog.items().first)
        var policy = try #require(try await h.catalog.policy(named: item.policy))
        policy.verification = verification
        try await h.engine.updatePolicy(policy)
        h.clock.advance(by: 3600 + 60)
        let job = try #require(try await h.engine.queueDueVerifications().first)
        try await h.catalog.deletePoints(ids: [point.id])
        let failed = try await h.finish(job)
        #expect(failed.status == .failed && failed.error?.code == .pointNotFound, "\(failed.error?.description ?? "")")
        #expect(failed.error?.message.contains(point.id) == true)
    }

    @Test func aVerificationSlotQueuedByALeaderThatDiedBeforeRecordingItIsNotQueuedAgain() async throws {
        let h = try await Harness()
        let verification = VerificationPolicy(schedule: .daily(at: TimeOfDay(hour: 9, minute: 0)), checks: [.data])
        let policy = Policy(name: "verified", schedule: .daily(at: TimeOfDay(hour: 22, minute: 0)), retention: Retention(days: 7),
                            verification: verification)
        let key = try h.addVM("web01")
        try h.write(key, at: 0, pattern(40_000, seed: 33))
        try await h.protect(["web01"], policy: policy)
        _ = try await h.backup("web01")
        let before = try #require(try await h.catalog.item(for: key))
        h.clock.advance(by: 3600 + 60)
        try await h.succeed(try #require(try await h.engine.queueDueVerifications().first))
        // As a leader killed between queuing the job and recording the slot leaves it.
        try await h.catalog.saveItem(before)
        h.clock.advance(by: 60)
        #expect(try await h.engine.queueDueVerifications().isEmpty)
        #expect(try await h.catalog.item(for: key)?.lastVerificationSlot != nil)
        #expect(try await h.catalog.jobs(JobFilter(type: .verify)).count == 1)
        h.clock.advance(by: 86_400)
        #expect(try await h.engine.queueDueVerifications().count == 1)
    }

    @Test func aScheduledBootCheckOnAFabricThatCannotRunPointsChecksTheDataAndSaysWhyNotTheBoot() async throws {
        let h = try await Harness()
        let verification = VerificationPolicy(schedule: .daily(at: TimeOfDay(hour: 9, minute: 0)), checks: [.data, .boot])
        let policy = Policy(name: "booted", schedule: .daily(at: TimeOfDay(hour: 22, minute: 0)), retention: Retention(days: 7),
                            verification: verification)
        let key = try h.addVM("web01")
        try h.write(key, at: 0, pattern(40_000, seed: 24))
        try await h.protect(["web01"], policy: policy)
        let point = try await h.backup("web01")
        h.clock.advance(by: 3600 + 60)
        let job = try await h.succeed(try #require(try await h.engine.queueDueVerifications().first))
        #expect(job.steps.first { $0.name == "Boot check" }?.status == .skipped)
        let recorded = try #require(try await h.catalog.point(id: point.id)?.verification)
        #expect(recorded.succeeded && recorded.checks == [.data])
        #expect(try await h.catalog.item(for: key)?.lastVerificationSlot != nil)
    }
}

/// Runs `body`, expecting it to throw an error with `code`.
private func expectCode(_ code: CoffreError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected \(code), nothing thrown", sourceLocation: sourceLocation)
    } catch let error as CoffreError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

private func isDirectory(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
}
