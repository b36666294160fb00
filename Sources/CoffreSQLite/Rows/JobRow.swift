import CoffreCore
import Foundation
internal import GRDB

/// A row of `jobs`. `lock` is not part of `Job`: it is set once, by `insertJob`, and an
/// in-progress job's lock is unique (a partial unique index backs the transaction's check).
struct JobRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "jobs"
    enum Columns {
        static let id = Column(CodingKeys.id)
        static let type = Column(CodingKeys.type)
        static let status = Column(CodingKeys.status)
        static let vmCloudService = Column(CodingKeys.vmCloudService)
        static let vmName = Column(CodingKeys.vmName)
        static let startedAt = Column(CodingKeys.startedAt)
        static let lock = Column(CodingKeys.lock)
        static let owner = Column(CodingKeys.owner)
    }

    var id: String
    var type: String
    var status: String
    var vmCloudService: String?
    var vmName: String?
    var startedAt: Double
    var endedAt: Double?
    /// JSON `[JobStep]`.
    var steps: String
    var totalBytes: Int64
    var scannedBytes: Int64
    var readBytes: Int64
    var writtenBytes: Int64
    var errorCode: String?
    var errorMessage: String?
    var errorWorkaround: String?
    var cancelRequested: Bool
    var owner: String
    var lock: String?
    /// JSON `[String: String]`.
    var details: String

    init(_ job: Job, lock: String?) throws {
        id = job.id
        type = job.type.rawValue
        status = job.status.rawValue
        vmCloudService = job.vm?.cloudService
        vmName = job.vm?.name
        startedAt = job.startedAt.stored
        endedAt = job.endedAt?.stored
        steps = try JSONColumn.encode(job.steps)
        totalBytes = job.progress.totalBytes
        scannedBytes = job.progress.scannedBytes
        readBytes = job.progress.readBytes
        writtenBytes = job.progress.writtenBytes
        errorCode = job.error?.code.rawValue
        errorMessage = job.error?.message
        errorWorkaround = job.error?.workaround
        cancelRequested = job.cancelRequested
        owner = job.owner
        self.lock = lock
        details = try JSONColumn.encode(job.details)
    }

    func record() throws -> Job {
        var vm: VMKey?
        if let vmCloudService, let vmName { vm = VMKey(cloudService: vmCloudService, name: vmName) }
        return Job(
            id: id,
            type: try decodeRaw(type, column: "jobs.type"),
            status: try decodeRaw(status, column: "jobs.status"),
            vm: vm, startedAt: Date(stored: startedAt), endedAt: endedAt.map(Date.init(stored:)),
            steps: try JSONColumn.decode(steps, column: "jobs.steps"),
            progress: JobProgress(totalBytes: totalBytes, scannedBytes: scannedBytes, readBytes: readBytes, writtenBytes: writtenBytes),
            error: ErrorInfo(storedCode: errorCode, message: errorMessage, workaround: errorWorkaround),
            cancelRequested: cancelRequested, owner: owner,
            details: try JSONColumn.decode(details, column: "jobs.details"))
    }

    var isInProgress: Bool { status == JobStatus.inProgress.rawValue }
    /// Queued or in progress: the job holds its lock.
    var holdsLock: Bool { isInProgress || status == JobStatus.queued.rawValue }
    var lease: (status: JobStatus, owner: String)? { JobStatus(rawValue: status).map { ($0, owner) } }

    /// The jobs `filter` selects, newest first.
    static func matching(_ filter: JobFilter) -> QueryInterfaceRequest<JobRow> {
        var request = all()
        if let type = filter.type { request = request.filter(Columns.type == type.rawValue) }
        if let status = filter.status { request = request.filter(Columns.status == status.rawValue) }
        if let vm = filter.vm {
            request = request.filter(Columns.vmCloudService == vm.cloudService && Columns.vmName == vm.name)
        }
        if let since = filter.since { request = request.filter(Columns.startedAt >= since.stored) }
        if let until = filter.until { request = request.filter(Columns.startedAt < until.stored) }
        request = request.order(Columns.startedAt.desc, Columns.id.desc)
        if let limit = filter.limit { request = request.limit(limit) }
        return request
    }
}
