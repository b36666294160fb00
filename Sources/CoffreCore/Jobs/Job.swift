public import Foundation

/// The operations the vault records as jobs (SPEC "Words").
public enum JobType: String, Codable, Sendable, CaseIterable {
    case discovery = "Discovery"
    case register = "Register"
    case configureProtection = "ConfigureProtection"
    case backup = "Backup"
    case restore = "Restore"
    case stopProtection = "StopProtection"
    case deleteBackupData = "DeleteBackupData"
    case undelete = "Undelete"
    case verify = "Verify"

    /// Accepts the raw value in any case (`backup`, `Backup`).
    public init?(parsing text: String) {
        guard let type = Self.allCases.first(where: { $0.rawValue.lowercased() == text.lowercased() }) else { return nil }
        self = type
    }
}

public enum JobStatus: String, Codable, Sendable, CaseIterable {
    /// Recorded, waiting for a node's job runner to claim it (backups: scheduled and on demand).
    case queued = "Queued"
    case inProgress = "InProgress"
    case succeeded = "Succeeded"
    case failed = "Failed"
    case cancelled = "Cancelled"

    public init?(parsing text: String) {
        guard let status = Self.allCases.first(where: { $0.rawValue.lowercased() == text.lowercased() }) else { return nil }
        self = status
    }

    /// Succeeded, failed or cancelled: neither queued nor in progress.
    public var isFinished: Bool { self != .inProgress && self != .queued }
}

/// One step of a job, with its timing and the bytes it moved (J2).
public struct JobStep: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable { case inProgress, succeeded, failed, skipped, cancelled }
    public var name: String
    public var status: Status
    public var startedAt: Date
    public var endedAt: Date?
    public var bytes: Int64?
    /// What happened, in words.
    public var detail: String?

    public init(name: String, status: Status = .inProgress, startedAt: Date, endedAt: Date? = nil,
                bytes: Int64? = nil, detail: String? = nil) {
        self.name = name
        self.status = status
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.bytes = bytes
        self.detail = detail
    }
}

/// Bytes a running job has dealt with.
public struct JobProgress: Codable, Sendable, Equatable {
    public var totalBytes: Int64
    public var scannedBytes: Int64
    public var readBytes: Int64
    public var writtenBytes: Int64

    public init(totalBytes: Int64 = 0, scannedBytes: Int64 = 0, readBytes: Int64 = 0, writtenBytes: Int64 = 0) {
        self.totalBytes = totalBytes
        self.scannedBytes = scannedBytes
        self.readBytes = readBytes
        self.writtenBytes = writtenBytes
    }
}

/// A record of one operation on one item (D4, J2).
public struct Job: Codable, Sendable, Equatable {
    public var id: String
    public var type: JobType
    public var status: JobStatus
    /// The VM the job is about; nil for discovery.
    public var vm: VMKey?
    public var startedAt: Date
    public var endedAt: Date?
    public var steps: [JobStep]
    public var progress: JobProgress
    public var error: ErrorInfo?
    /// Someone asked to cancel; the job stops at its next check.
    public var cancelRequested: Bool
    /// The engine instance running it; a job whose owner is gone was interrupted.
    public var owner: String
    /// Facts about the job: `point`, `policy`, `retainUntil`, `target`, `trigger`…
    public var details: [String: String]

    public init(
        id: String, type: JobType, status: JobStatus = .inProgress, vm: VMKey? = nil, startedAt: Date,
        endedAt: Date? = nil, steps: [JobStep] = [], progress: JobProgress = JobProgress(), error: ErrorInfo? = nil,
        cancelRequested: Bool = false, owner: String, details: [String: String] = [:]
    ) {
        self.id = id
        self.type = type
        self.status = status
        self.vm = vm
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.steps = steps
        self.progress = progress
        self.error = error
        self.cancelRequested = cancelRequested
        self.owner = owner
        self.details = details
    }

    /// A new sortable id: `job-20261122T101530-3f9a1c2b`.
    public static func makeID(at date: Date) -> String {
        "job-" + compactTimestamp(date) + "-" + String(UInt32.random(in: 0...UInt32.max), radix: 16).leftPadded(to: 8)
    }
}

/// `20261122T101530`, UTC.
public func compactTimestamp(_ date: Date) -> String {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
    func two(_ v: Int?) -> String { String(v ?? 0).leftPadded(to: 2) }
    return "\(c.year ?? 0)\(two(c.month))\(two(c.day))T\(two(c.hour))\(two(c.minute))\(two(c.second))"
}

extension String {
    /// Zeros on the left up to `width` characters.
    package func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }

    /// The text with XML's five special characters escaped: safe inside an element or an
    /// attribute (libvirt's XML, S3's request bodies).
    package var xmlEscaped: String {
        var out = ""
        for character in self {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "'": out += "&apos;"
            case "\"": out += "&quot;"
            default: out.append(character)
            }
        }
        return out
    }
}

/// Which jobs to list (J2); nil fields do not filter. Newest first.
public struct JobFilter: Sendable, Equatable {
    public var type: JobType?
    public var status: JobStatus?
    public var vm: VMKey?
    /// Jobs started at or after.
    public var since: Date?
    /// Jobs started before.
    public var until: Date?
    public var limit: Int?

    public init(type: JobType? = nil, status: JobStatus? = nil, vm: VMKey? = nil, since: Date? = nil, until: Date? = nil,
                limit: Int? = nil) {
        self.type = type
        self.status = status
        self.vm = vm
        self.since = since
        self.until = until
        self.limit = limit
    }
}
