public import CoffreCore
internal import Logging
internal import PostgresNIO

extension PostgresCatalog {
    public func insertJob(_ job: Job, lock: String?) async throws -> Job? {
        // The partial unique index on in-progress locks decides between two nodes: the loser's
        // insert does nothing, and it reads the winner. A holder that ended in between is
        // no holder: the insert is tried again.
        for _ in 0..<10 {
            let outcome: Job?? = try await withConnection { [logger] connection in
                if try await Self.insert(job, lock: lock, connection) { return .some(nil) }
                guard let lock else {
                    throw CoffreError.catalogFailed(self.location, detail: "a job with id \(job.id) exists already")
                }
                let holders = try await Self.jobs(
                    "SELECT doc, cancel_requested FROM jobs WHERE lock = \(lock) AND status = \(JobStatus.inProgress.rawValue)",
                    connection, logger: logger)
                if let holder = holders.first { return .some(holder) }
                let sameID = try await connection.rows("SELECT 1 FROM jobs WHERE id = \(job.id)", logger: logger).count
                if sameID == 1 { throw CoffreError.catalogFailed(self.location, detail: "a job with id \(job.id) exists already") }
                return .none
            }
            if let outcome { return outcome }
        }
        throw CoffreError.catalogBusy(location, seconds: 0)
    }

    /// False when the id is taken or another in-progress job holds `lock`.
    static func insert(_ job: Job, lock: String?, _ connection: PostgresConnection) async throws -> Bool {
        let doc = try JSONColumn.encode(job)
        return try await connection.rows("""
            INSERT INTO jobs (id, type, status, vm_cloud_service, vm_name, started_at, lock, cancel_requested, doc)
            VALUES (\(job.id), \(job.type.rawValue), \(job.status.rawValue), \(job.vm?.cloudService), \(job.vm?.name),
                    \(job.startedAt.timeIntervalSinceReferenceDate), \(lock), \(job.cancelRequested), \(doc))
            ON CONFLICT DO NOTHING RETURNING 1
            """, logger: connection.logger).count == 1
    }

    public func updateJob(_ job: Job) async throws {
        let doc = try JSONColumn.encode(job)
        // The lock stays what insertJob set; a cancel request already recorded stays.
        let updated = try await withConnection { [logger] connection in
            try await connection.rows("""
                UPDATE jobs SET type = \(job.type.rawValue), status = \(job.status.rawValue),
                    vm_cloud_service = \(job.vm?.cloudService), vm_name = \(job.vm?.name),
                    started_at = \(job.startedAt.timeIntervalSinceReferenceDate),
                    cancel_requested = cancel_requested OR \(job.cancelRequested), doc = \(doc)
                WHERE id = \(job.id) RETURNING 1
                """, logger: logger).count
        }
        guard updated == 1 else { throw CoffreError.jobNotFound(job.id) }
    }

    public func job(id: String) async throws -> Job? {
        try await withConnection { [logger] connection in
            try await Self.jobs("SELECT doc, cancel_requested FROM jobs WHERE id = \(id)", connection, logger: logger).first
        }
    }

    public func jobs(_ filter: JobFilter) async throws -> [Job] {
        // Every condition is bound; an absent one is `NULL IS NULL`.
        let query: PostgresQuery = """
            SELECT doc, cancel_requested FROM jobs
            WHERE (\(filter.type?.rawValue)::text IS NULL OR type = \(filter.type?.rawValue))
              AND (\(filter.status?.rawValue)::text IS NULL OR status = \(filter.status?.rawValue))
              AND (\(filter.vm?.cloudService)::text IS NULL
                   OR (vm_cloud_service = \(filter.vm?.cloudService) AND vm_name = \(filter.vm?.name)))
              AND (\(filter.since?.timeIntervalSinceReferenceDate)::float8 IS NULL
                   OR started_at >= \(filter.since?.timeIntervalSinceReferenceDate))
            ORDER BY started_at DESC, id DESC
            LIMIT \(filter.limit)
            """
        return try await withConnection { [logger] connection in try await Self.jobs(query, connection, logger: logger) }
    }

    public func requestCancel(jobID: String) async throws -> Job? {
        try await withConnection { [logger] connection in
            try await Self.jobs("""
                UPDATE jobs SET cancel_requested = true
                WHERE id = \(jobID) AND status = \(JobStatus.inProgress.rawValue)
                RETURNING doc, cancel_requested
                """, connection, logger: logger).first
        }
    }

    private static func jobs(_ query: PostgresQuery, _ connection: PostgresConnection, logger: Logger) async throws -> [Job] {
        try await connection.rows(query, logger: logger).map { row in
            let (doc, cancelRequested) = try row.decode((String, Bool).self)
            var job: Job = try JSONColumn.decode(doc, column: "jobs.doc")
            job.cancelRequested = cancelRequested
            return job
        }
    }
}
