import CoffreCore
import CoffreEngine
import Foundation
import Hummingbird

// MARK: Jobs

extension APIRoutes {
    static var jobs: [APIRoute] {
        [
            APIRoute(.get, prefix + "/jobs", .reader) { request, _, s in
                try Reply.json(try await s.engine.jobs(try await jobFilter(request, engine: s.engine)))
            },
            APIRoute(.get, prefix + "/jobs/{id}", .reader) { _, context, s in
                try Reply.json(try await s.engine.job(try context.pathParameter("id")))
            },
            APIRoute(.post, prefix + "/jobs/{id}/cancel", .operator) { _, context, s in
                try Reply.accepted(try await s.engine.cancel(jobID: try context.pathParameter("id")))
            },
        ]
    }

    static func jobFilter(_ request: Request, engine: Engine) async throws -> JobFilter {
        var filter = JobFilter()
        if let type = request.query("type") {
            guard let parsed = JobType(parsing: type) else {
                throw APIError.badRequest("InvalidFilter", "Unknown job type '\(type)'",
                                          workaround: "Use one of \(JobType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            filter.type = parsed
        }
        if let status = request.query("status") {
            guard let parsed = JobStatus(parsing: status) else {
                throw APIError.badRequest("InvalidFilter", "Unknown job status '\(status)'",
                                          workaround: "Use one of \(JobStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            filter.status = parsed
        }
        if let limit = request.query("limit") {
            guard let value = Int(limit), value > 0 else {
                throw APIError.badRequest("InvalidFilter", "'limit' must be a positive integer, not '\(limit)'")
            }
            filter.limit = value
        }
        if let since = request.query("since") { filter.since = try parseSince(since, now: engine.clock.now()) }
        if let vm = request.query("vm") { filter.vm = try await engine.resolveVM(vm).key }
        return filter
    }

    /// `24h`, `7d`, `30m`, a day `2027-01-31` (its start, UTC) or an ISO 8601 instant.
    static func parseSince(_ text: String, now: Date) throws -> Date {
        if let unit = text.last, "hdm".contains(unit), let count = Double(text.dropLast()), count >= 0, count < 1e7 {
            let seconds = unit == "h" ? 3600.0 : unit == "d" ? 86_400 : 60
            return now.addingTimeInterval(-count * seconds)
        }
        if let date = ISO8601DateFormatter().date(from: text) { return date }
        let days = ISO8601DateFormatter()
        days.formatOptions = [.withFullDate]
        guard let day = days.date(from: text) else {
            throw APIError.badRequest("InvalidFilter", "'since' is not a duration or a date: '\(text)'",
                                      workaround: "Use 24h, 7d, 2027-01-31 or an ISO 8601 instant")
        }
        return day
    }
}
