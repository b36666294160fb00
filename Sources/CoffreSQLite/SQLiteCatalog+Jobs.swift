public import CoffreCore
public import Foundation
internal import GRDB

extension SQLiteCatalog {
    public func insertJob(_ job: Job, lock: String?) async throws -> Job? {
        // One IMMEDIATE transaction: no other process can insert between the check and the insert.
        try await write { db in
            if let lock,
               let holder = try JobRow.filter(JobRow.Columns.lock == lock
                                              && [JobStatus.queued.rawValue, JobStatus.inProgress.rawValue].contains(JobRow.Columns.status))
                   .fetchOne(db) {
                return try holder.record()
            }
            try JobRow(job, lock: lock).insert(db)
            return nil
        }
    }

    public func updateJob(_ job: Job) async throws {
        try await write { db in
            let stored = try JobRow.fetchOne(db, key: job.id)
            try job.checkLease(stored: stored?.lease)
            guard let stored else { return }
            var row = try JobRow(job, lock: stored.lock)
            row.cancelRequested = job.cancelRequested || stored.cancelRequested
            try row.update(db)
        }
    }

    public func job(id: String) async throws -> Job? {
        try await read { db in try JobRow.fetchOne(db, key: id)?.record() }
    }

    public func jobs(_ filter: JobFilter) async throws -> [Job] {
        try await read { db in try Self.jobs(filter, db) }
    }

    static func jobs(_ filter: JobFilter, _ db: Database) throws -> [Job] {
        try JobRow.matching(filter).fetchAll(db).map { try $0.record() }
    }

    public func requestCancel(jobID: String) async throws -> Job? {
        try await write { db in
            guard var row = try JobRow.fetchOne(db, key: jobID), row.isInProgress else { return nil }
            row.cancelRequested = true
            try row.update(db)
            return try row.record()
        }
    }

    public func cancelQueuedJob(id: String, at date: Date) async throws -> Job? {
        try await write { db in
            guard let row = try JobRow.fetchOne(db, key: id), row.status == JobStatus.queued.rawValue else { return nil }
            let cancelled = try row.record().cancelledInQueue(at: date)
            try JobRow(cancelled, lock: row.lock).update(db)
            return cancelled
        }
    }

    public func claimJobs(owner: String, limits: ClaimLimits, at date: Date) async throws -> [Job] {
        // One IMMEDIATE transaction: processes sharing the file claim one after the other.
        try await write { db in
            let queued = try JobRow.filter(JobRow.Columns.status == JobStatus.queued.rawValue && JobRow.Columns.type == limits.type.rawValue)
                .order(JobRow.Columns.startedAt, JobRow.Columns.id)
                .fetchAll(db)
            guard !queued.isEmpty else { return [] }
            var running: [String: Int] = [:]
            for row in try JobRow.filter(JobRow.Columns.status == JobStatus.inProgress.rawValue && JobRow.Columns.type == limits.type.rawValue).fetchAll(db) {
                running[try row.record().details["fabric"] ?? "", default: 0] += 1
            }
            let locks = Dictionary(uniqueKeysWithValues: queued.map { ($0.id, $0.lock) })
            return try limits.select(try queued.map { try $0.record() }, running: running).map { job in
                let claimed = ClaimLimits.claimed(job, owner: owner, at: date)
                try JobRow(claimed, lock: locks[job.id] ?? nil).update(db)
                return claimed
            }
        }
    }
}
