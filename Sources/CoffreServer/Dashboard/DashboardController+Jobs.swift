import CoffreCore
import CoffreEngine
import Foundation
import Hummingbird

// The Jobs tab: the filtered list, one job's steps, cancel, and live progress.
extension DashboardController {
    /// The `since` choices of the job filter, in seconds; the first is the default.
    static let sinceChoices: [(value: String, label: String, seconds: Double?)] = [
        ("24h", "Last 24 hours", 86_400), ("1h", "Last hour", 3_600), ("7d", "Last 7 days", 7 * 86_400),
        ("30d", "Last 30 days", 30 * 86_400), ("all", "Any time", nil),
    ]

    func jobs(_ request: Request, _ context: CoffreContext) async throws -> Response {
        struct Body {
            var types: [OptionView]
            var statuses: [OptionView]
            var since: [OptionView]
            var vm: String?
            var day: String?
            var jobs: [JobRow]
        }
        let query = request.uri.queryParameters
        let type = query["type"].flatMap { JobType(parsing: String($0)) }
        let status = query["status"].flatMap { JobStatus(parsing: String($0)) }
        let since = Self.sinceChoices.first { $0.value == query["since"].map(String.init) } ?? Self.sinceChoices[0]
        var filter = JobFilter(type: type, status: status, limit: 500)
        if let seconds = since.seconds { filter.since = engine.clock.now().addingTimeInterval(-seconds) }
        if let vm = query["vm"].map({ String($0).removingPercentEncoding ?? String($0) }) {
            filter.vm = try await engine.resolveVM(vm).key
        }
        // One UTC day (the backup chart's bars link here): overrides `since`.
        let day = query["day"].map(String.init).flatMap { text in VaultSample.start(ofDay: text).map { (text, $0) } }
        if let (_, start) = day {
            filter.since = start
            filter.until = start.addingTimeInterval(86_400)
        }
        let now = engine.clock.now()
        let body = Body(
            types: JobType.allCases.map { OptionView(value: $0.rawValue, label: $0.rawValue, selected: $0 == type) },
            statuses: JobStatus.allCases.map { OptionView(value: $0.rawValue, label: $0.rawValue, selected: $0 == status) },
            since: Self.sinceChoices.map { OptionView(value: $0.value, label: $0.label, selected: $0.value == since.value) },
            vm: filter.vm?.description, day: day?.0,
            jobs: try await engine.jobs(filter).map { JobRow($0, now: now) })
        return pages.page("jobs", title: "Jobs", tab: .jobs, role: context.role, body: body)
    }

    func job(_ id: String, _ context: CoffreContext) async throws -> Response {
        let job = try await engine.job(id)
        return pages.page("job", title: "\(job.type.rawValue) job \(job.id)", tab: .jobs, role: context.role,
                          body: JobView(job, now: engine.clock.now()))
    }

    func cancel(_ id: String) async throws -> Response {
        try await engine.cancel(jobID: id)
        return DashboardPages.redirect(DashboardFormat.jobHref(id))
    }

    /// The job page's live data (`JobView` as JSON), polled by `dashboard.js`.
    func progress(_ id: String, _ context: CoffreContext) async throws -> Response {
        try context.require(.reader)
        let job: Job
        do {
            job = try await engine.job(id)
        } catch let error as CoffreError {
            throw APIError(error)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var headers = DashboardPages.securityHeaders
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        let data = try encoder.encode(JobView(job, now: engine.clock.now()))
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
