import CoffreCore
import CoffreEngine
import Foundation

// What the templates show, already formatted: Mustache reads these through reflection, and
// `JobView` is also the live-progress JSON, so the page and its script show the same words.

/// An error as a page shows it.
struct ErrorView: Codable, Equatable {
    /// The code's wire form: Mustache shows strings.
    var code: String
    var message: String
    var workaround: String?

    init(code: CoffreError.Code, message: String, workaround: String?) {
        self.code = code.rawValue
        self.message = message
        self.workaround = workaround
    }

    init(_ info: ErrorInfo) {
        self.init(code: info.code, message: info.message, workaround: info.workaround)
    }
}

/// One `<option>` of a select.
struct OptionView {
    var value: String
    var label: String
    var selected = false
}

/// One row of a job list.
struct JobRow {
    var id: String
    var href: String
    var type: String
    var vm: String
    var status: String
    var statusCss: String
    var finished: Bool
    var started: String
    var duration: String
    var errorCode: String

    init(_ job: Job, now: Date) {
        id = job.id
        href = DashboardFormat.jobHref(job.id)
        type = job.type.rawValue
        vm = job.vm?.description ?? "—"
        status = job.status.rawValue
        statusCss = DashboardFormat.css(job.status)
        finished = job.status.isFinished
        started = DashboardFormat.instant(job.startedAt)
        duration = DashboardFormat.duration(of: job, now: now)
        errorCode = job.error?.code.rawValue ?? ""
    }
}

/// One job with its steps: the job page, and the JSON its script polls.
struct JobView: Codable {
    struct Step: Codable {
        var name: String
        var status: String
        var started: String
        var duration: String
        var bytes: String
        var detail: String
    }

    struct Detail: Codable {
        var key: String
        var value: String
    }

    var id: String
    var type: String
    var vm: String?
    var status: String
    var statusCss: String
    var finished: Bool
    var cancelRequested: Bool
    var started: String
    var ended: String
    var duration: String
    /// Percent of the bytes scanned, when the job moves data.
    var percent: Int?
    var progressText: String?
    var steps: [Step]
    var error: ErrorView?
    var details: [Detail]
    var cancelHref: String
    /// The VM's recovery points, for backup, restore and verify jobs.
    var pointsHref: String?

    init(_ job: Job, now: Date) {
        id = job.id
        type = job.type.rawValue
        vm = job.vm?.description
        status = job.status.rawValue
        statusCss = DashboardFormat.css(job.status)
        finished = job.status.isFinished
        cancelRequested = job.cancelRequested && !job.status.isFinished
        started = DashboardFormat.instant(job.startedAt)
        ended = job.endedAt.map(DashboardFormat.instant) ?? "—"
        duration = DashboardFormat.duration(of: job, now: now)
        let progress = job.progress
        if progress.totalBytes > 0 {
            percent = Int(min(100, progress.scannedBytes * 100 / progress.totalBytes))
            // A backup stores into the vault; a restore writes disks.
            let written = job.type == .restore ? "written" : "stored"
            progressText = "\(ByteSize.format(progress.scannedBytes)) of \(ByteSize.format(progress.totalBytes)) scanned · "
                + "read \(ByteSize.format(progress.readBytes)) · \(written) \(ByteSize.format(progress.writtenBytes))"
        }
        steps = job.steps.map { step in
            Step(name: step.name, status: step.status.rawValue, started: DashboardFormat.time(step.startedAt),
                 duration: DashboardFormat.duration(from: step.startedAt, to: step.endedAt ?? now),
                 bytes: step.bytes.map(ByteSize.format) ?? "", detail: step.detail ?? "")
        }
        error = job.error.map(ErrorView.init)
        details = job.details.sorted { $0.key < $1.key }.map { Detail(key: $0.key, value: $0.value) }
        cancelHref = DashboardFormat.jobHref(job.id) + "/cancel"
        if let vm = job.vm, [.backup, .restore, .verify].contains(job.type) {
            pointsHref = DashboardFormat.pointsHref(vm)
        }
    }
}

/// Formatting shared by the pages.
enum DashboardFormat {
    static func instant(_ date: Date) -> String { Engine.instant(date) }

    /// `2026-12-06` (UTC).
    static func day(_ date: Date) -> String { VaultSample.day(of: date) }

    /// `10:15:30` of a UTC instant.
    static func time(_ date: Date) -> String {
        String(Engine.instant(date).dropFirst(11).prefix(8))
    }

    static func duration(of job: Job, now: Date) -> String {
        duration(from: job.startedAt, to: job.endedAt ?? now)
    }

    /// `850 ms`, `12.4 s`, `3 min 05 s`, `2 h 07 min`.
    static func duration(from start: Date, to end: Date) -> String {
        let seconds = max(0, end.timeIntervalSince(start))
        switch seconds {
        case ..<1: return "\(Int(seconds * 1000)) ms"
        case ..<60: return String(format: "%.1f s", seconds)
        case ..<3600: return String(format: "%d min %02d s", Int(seconds) / 60, Int(seconds) % 60)
        default: return String(format: "%d h %02d min", Int(seconds) / 3600, Int(seconds) % 3600 / 60)
        }
    }

    static func css(_ status: JobStatus) -> String { status.rawValue.lowercased() }

    static func jobHref(_ id: String) -> String { "/jobs/" + segment(id) }

    static func pointsHref(_ vm: VMKey) -> String { "/vms/" + segment(vm.description) + "/points" }

    static func restoreHref(_ vm: VMKey) -> String { "/vms/" + segment(vm.description) + "/restore" }

    static func verifyHref(_ vm: VMKey) -> String { "/vms/" + segment(vm.description) + "/verify" }

    static func jobsHref(type: JobType? = nil, status: JobStatus? = nil, since: String? = nil, vm: VMKey? = nil,
                         day: String? = nil) -> String {
        let query = [type.map { "type=" + $0.rawValue }, status.map { "status=" + $0.rawValue }, since.map { "since=" + segment($0) },
                     vm.map { "vm=" + segment($0.description) }, day.map { "day=" + segment($0) }].compactMap { $0 }
        return query.isEmpty ? "/jobs" : "/jobs?" + query.joined(separator: "&")
    }

    /// Percent-encodes everything but unreserved characters, `/` included: a VM key is one segment.
    static func segment(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
    }

    private static let unreserved = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// Consistency as a person reads it.
    static func consistency(_ value: Consistency) -> String {
        switch value {
        case .applicationConsistent: "Application consistent"
        case .fileSystemConsistent: "File-system consistent"
        case .crashConsistent: "Crash consistent"
        }
    }

    static func registration(_ state: RegistrationState) -> String {
        switch state {
        case .notRegistered: "Not registered"
        case .registering: "Registering"
        case .registered: "Registered"
        case .failed: "Registration failed"
        }
    }
}
