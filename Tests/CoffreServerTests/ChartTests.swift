import CoffreCore
import CoffreEngine
@testable import CoffreServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The dashboard's charts (issue 19): inline SVG whose marks carry the API's numbers, with
/// captions, axis units and a table fallback, and nothing the CSP forbids.
@Suite struct ChartTests {
    static func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    /// What the CSP would block or a screen reader would miss.
    static func expectSafeAndLabelled(_ page: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let start = page.range(of: "<figure"), let end = page.range(of: "</figure>", options: .backwards) else {
            Issue.record("no chart", sourceLocation: sourceLocation)
            return
        }
        let html = String(page[start.lowerBound..<end.upperBound])
        #expect(!html.contains("style=") && !html.contains("<script") && !html.contains("http://") && !html.contains("https://"),
                sourceLocation: sourceLocation)
        #expect(html.contains("<figcaption>") && html.contains("role=\"img\"") && html.contains("<table class=\"sr-only\">"),
                sourceLocation: sourceLocation)
    }

    @Test func theBackupChartStacksEachDaysOutcomesAndLinksToItsJobs() {
        let days = [JobDay(day: "2026-12-08", succeeded: 2, cancelled: 1), JobDay(day: "2026-12-09"),
                    JobDay(day: "2026-12-10", succeeded: 1, failed: 1)]
        let html = SVGCharts.backups(days)
        Self.expectSafeAndLabelled(html)
        #expect(Self.count("<g class=\"day\"", in: html) == 3, "one group per day, empty days included")
        #expect(html.contains(#"data-day="2026-12-08" data-succeeded="2" data-failed="0" data-cancelled="1""#))
        #expect(Self.count("class=\"bar status-", in: html) == 4, "a rect per non-zero outcome")
        #expect(html.contains(#"<a href="/jobs?type=Backup&amp;day=2026-12-10">"#))
        #expect(html.contains(">2 jobs</text>") && html.contains(">4 jobs</text>"), "a scale up to 3 jobs tops at 4: \(html)")
        #expect(html.contains("<td>2026-12-10</td><td>1</td><td>1</td><td>0</td>"))
    }

    @Test func theStorageChartHasBothSeriesWithTheirBytesAndTheSaving() {
        let now = ISO8601DateFormatter().date(from: "2026-12-10T12:00:00Z")!
        let history = StorageHistory(
            samples: [VaultSample(day: "2026-12-09", takenAt: now, storedBytes: 1 << 20, logicalBytes: 5 << 20),
                      VaultSample(day: "2026-12-10", takenAt: now, storedBytes: 2 << 20, logicalBytes: 8 << 20)],
            growth7Days: nil, growth30Days: 1 << 20)
        let html = SVGCharts.storage(history, days: 30, now: now)
        Self.expectSafeAndLabelled(html)
        #expect(html.contains(#"data-series="stored" data-day="2026-12-10" data-bytes="2097152""#))
        #expect(html.contains(#"data-series="logical" data-day="2026-12-09" data-bytes="5242880""#))
        #expect(Self.count("<polyline", in: html) == 2)
        #expect(html.contains("Saving (logical ÷ stored): 4.0×"))
        #expect(html.contains(#"id="storage-growth-30" data-bytes="1048576">over 30 days: +1 MiB"#), "\(html)")
        #expect(html.contains("growth over 7 days: not yet known"))
        #expect(html.contains(" MiB</text>"), "the y axis is labelled in bytes")
        let before = SVGCharts.storage(StorageHistory(samples: [VaultSample(day: "2026-12-10", takenAt: now, storedBytes: 500, logicalBytes: 0)],
                                                      growth7Days: nil, growth30Days: nil), days: 30, now: now)
        #expect(before.contains("Saving (logical ÷ stored): —"), "no saving before the first point")
    }

    @Test func theTimelineMarksPointsByConsistencyHollowOnDemandAndCrossesMissedSlots() {
        let from = ISO8601DateFormatter().date(from: "2026-12-01T00:00:00Z")!
        let vm = VMKey(cloudService: "prod", name: "web<01>")
        let history = ItemHistory(
            vm: vm, from: from, to: from.addingTimeInterval(10 * 86_400),
            points: [.init(id: "rp-1", takenAt: from.addingTimeInterval(86_400), consistency: .applicationConsistent, type: .scheduled),
                     .init(id: "rp-2", takenAt: from.addingTimeInterval(3 * 86_400), consistency: .crashConsistent, type: .onDemand)],
            missedSlots: [from.addingTimeInterval(2 * 86_400)],
            backups: [.init(job: "job-1", startedAt: from.addingTimeInterval(86_400), seconds: 12.5, readBytes: 4 << 20,
                            writtenBytes: 1 << 20, status: .succeeded)])
        let timeline = SVGCharts.timeline(history)
        Self.expectSafeAndLabelled(timeline)
        #expect(timeline.contains(#"class="point consistency-applicationConsistent" "#))
        #expect(timeline.contains(#"class="point consistency-crashConsistent on-demand" "#))
        #expect(timeline.contains(#"data-point="rp-2""#) && timeline.contains(#"data-type="onDemand""#))
        #expect(Self.count("<g class=\"missed\"", in: timeline) == 1 && timeline.contains(#"data-slot="2026-12-03T00:00:00Z""#))
        let runs = SVGCharts.runs(history)
        Self.expectSafeAndLabelled(runs)
        #expect(runs.contains(#"data-job="job-1" data-series="duration" data-value="12.5""#))
        #expect(runs.contains(#"data-series="read" data-value="4194304""#) && runs.contains(#"data-series="written" data-value="1048576""#))
        #expect(runs.contains(" s</text>"), "durations are labelled in seconds")
    }

    @Test func theItemStorageChartRanksAndEscapesNames() {
        let rows = [ItemStorage(vm: VMKey(cloudService: "prod", name: "db<1>"), points: 3, bytesOnlyHere: 3 << 30, blocksOnlyHere: 9),
                    ItemStorage(vm: VMKey(cloudService: "prod", name: "web"), points: 1, bytesOnlyHere: 1 << 30, blocksOnlyHere: 2)]
        let html = SVGCharts.itemStorage(rows)
        Self.expectSafeAndLabelled(html)
        #expect(!html.contains("db<1>") && html.contains("db&lt;1&gt;"))
        let first = try? #require(html.range(of: "data-bytes=\"3221225472\""))
        let second = try? #require(html.range(of: "data-bytes=\"1073741824\""))
        #expect(first != nil && second != nil && first!.lowerBound < second!.lowerBound)
    }

    /// The pages draw the API's numbers: after a backup, the storage, backups, item storage,
    /// timeline and transfer charts carry what /api/v1/history answers.
    @Test func thePagesChartsCarryTheAPIsNumbers() async throws {
        let harness = try await ServerHarness()
        try harness.addVM("web01", cloudService: "prod")
        try await harness.finish(try await harness.engine.discover().id)
        for job in await harness.engine.register(["prod/web01"]).jobs { try await harness.finish(job.id) }
        try await harness.engine.createPolicy(Policy(name: "nightly", schedule: .daily(at: TimeOfDay(hour: 22, minute: 0)),
                                                     retention: Retention(days: 7)))
        for job in await harness.engine.protect(["prod/web01"], policy: "nightly").jobs { try await harness.finish(job.id) }
        #expect(try await harness.finish(try await harness.engine.backupNow("prod/web01").id).status == .succeeded)
        try await harness.app.test(.router) { client in
            let browser = DashboardTests.Browser(client: client, harness: harness, role: .reader)
            func api<T: Decodable>(_ type: T.Type, _ path: String) async throws -> T {
                let response = try await browser.get(path)
                #expect(response.status == .ok, "\(path): \(String(buffer: response.body))")
                let decoder = JSONDecoder()
                decoder.dateDecodingStrategy = .iso8601
                return try decoder.decode(type, from: Data(String(buffer: response.body).utf8))
            }
            let storage = try await api(StorageHistory.self, "/api/v1/history/storage?days=30")
            let sample = try #require(storage.samples.last)
            let days = try await api([JobDay].self, "/api/v1/history/backups")
            #expect(days.count == 30 && days.last?.succeeded == 1)
            let items = try await api([ItemStorage].self, "/api/v1/history/items")
            let history = try await api(ItemHistory.self, "/api/v1/vms/prod%2Fweb01/history?days=7")
            #expect(history.points.count == 1 && history.backups.count == 1)
            let bad = try await browser.get("/api/v1/history/backups?days=0")
            #expect(bad.status == .badRequest && String(buffer: bad.body).contains("InvalidFilter"))

            let front = DashboardTests.html(try await browser.get("/"))
            Self.expectSafeAndLabelled(front)
            #expect(front.contains(#"data-series="stored" data-day="\#(sample.day)" data-bytes="\#(sample.storedBytes)""#))
            #expect(front.contains(#"data-day="\#(days.last!.day)" data-succeeded="1" data-failed="0" data-cancelled="0""#))
            let protected = DashboardTests.html(try await browser.get("/protected"))
            #expect(protected.contains(#"data-bytes="\#(items[0].bytesOnlyHere)" data-points="1""#))
            let points = DashboardTests.html(try await browser.get("/vms/prod%2Fweb01/points"))
            #expect(points.contains(#"data-point="\#(history.points[0].id)""#))
            #expect(points.contains(#"data-series="written" data-value="\#(history.backups[0].writtenBytes)""#))
            let dayJobs = DashboardTests.html(try await browser.get("/jobs?type=Backup&day=\(days.last!.day)"))
            #expect(dayJobs.contains(#"id="day-filter""#) && dayJobs.contains(history.backups[0].job))
            let otherDay = DashboardTests.html(try await browser.get("/jobs?type=Backup&day=\(days.first!.day)"))
            #expect(!otherDay.contains(history.backups[0].job))
        }
    }
}
