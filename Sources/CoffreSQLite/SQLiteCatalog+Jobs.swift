public import CoffreCore
internal import GRDB

extension SQLiteCatalog {
    public func insertJob(_ job: Job, lock: String?) async throws -> Job? {
        // One IMMEDIATE transaction: no other process can insert between the check and the insert.
        try await write { db in
            if let lock,
               let holder = try JobRow.filter(JobRow.Columns.lock == lock && JobRow.Columns.status == JobStatus.inProgress.rawValue)
                   .fetchOne(db) {
                return try holder.record()
            }
            try JobRow(job, lock: lock).insert(db)
            return nil
        }
    }

    public func updateJob(_ job: Job) async throws {
        try await write { db in
            guard let stored = try JobRow.fetchOne(db, key: job.id) else { throw CoffreError.jobNotFound(job.id) }
            var row = try JobRow(job, lock: stored.lock)
            row.cancelRequested = job.cancelRequested || stored.cancelRequested
            try row.update(db)
        }
    }

    public func job(id: String) async throws -> Job? {
        try await read { db in try JobRow.fetchOne(db, key: id)?.record() }
    }

    public func jobs(_ filter: JobFilter) async throws -> [Job] {
        try await read { db in try JobRow.matching(filter).fetchAll(db).map { try $0.record() } }
    }

    public func requestCancel(jobID: String) async throws -> Job? {
        try await write { db in
            guard var row = try JobRow.fetchOne(db, key: jobID), row.isInProgress else { return nil }
            row.cancelRequested = true
            try row.update(db)
            return try row.record()
        }
    }
}
