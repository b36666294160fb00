public import CoffreCore
public import Foundation
internal import Logging
internal import PostgresNIO

extension PostgresCatalog {
    public func insertJob(_ job: Job, lock: String?) async throws -> Job? {
        // The partial unique index on the locks of queued and in-progress jobs decides between
        // two nodes: the loser's insert does nothing, and it reads the winner. A holder that
        // ended in between is no holder: the insert is tried again.
        for _ in 0..<10 {
            let outcome: Job?? = try await withConnection { [logger] connection in
                if try await Self.insert(job, lock: lock, connection) { return .some(nil) }
                guard let lock else {
                    throw CoffreError.catalogFailed(self.location, detail: "a job with id \(job.id) exists already")
                }
                let holders = try await Self.jobs(
                    "SELECT doc, cancel_requested FROM jobs WHERE lock = \(lock) AND status IN ('Queued', 'InProgress')",
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
            INSERT INTO jobs (id, type, status, vm_cloud_service, vm_name, started_at, lock, cancel_requested, owner, fabric, doc)
            VALUES (\(job.id), \(job.type.rawValue), \(job.status.rawValue), \(job.vm?.cloudService), \(job.vm?.name),
                    \(job.startedAt.timeIntervalSinceReferenceDate), \(lock), \(job.cancelRequested), \(job.owner),
                    \(job.details["fabric"]), \(doc))
            ON CONFLICT DO NOTHING RETURNING 1
            """, logger: connection.logger).count == 1
    }

    public func updateJob(_ job: Job) async throws {
        let doc = try JSONColumn.encode(job)
        // Only a queued or running job still `job.owner`'s: a node another took for dead
        // writes nothing more. The lock stays what insertJob set; a cancel request stays.
        try await withConnection { [logger] connection in
            let updated = try await connection.rows("""
                UPDATE jobs SET type = \(job.type.rawValue), status = \(job.status.rawValue),
                    vm_cloud_service = \(job.vm?.cloudService), vm_name = \(job.vm?.name),
                    started_at = \(job.startedAt.timeIntervalSinceReferenceDate), fabric = \(job.details["fabric"]),
                    cancel_requested = cancel_requested OR \(job.cancelRequested), doc = \(doc)
                WHERE id = \(job.id) AND status IN ('Queued', 'InProgress') AND owner = \(job.owner) RETURNING 1
                """, logger: logger).count
            if updated == 0 { try job.checkLease(stored: try await Self.lease(of: job.id, connection)) }
        }
    }

    /// The stored status and owner of a job (nil: no such job); `lock` holds the row until the
    /// transaction ends.
    static func lease(of id: String, lock: Bool = false, _ connection: PostgresConnection) async throws -> (status: JobStatus, owner: String)? {
        let query: PostgresQuery = lock
            ? "SELECT status, owner FROM jobs WHERE id = \(id) FOR UPDATE"
            : "SELECT status, owner FROM jobs WHERE id = \(id)"
        guard let row = try await connection.rows(query, logger: connection.logger).first else { return nil }
        let (status, owner) = try row.decode((String, String).self)
        guard let known = JobStatus(rawValue: status) else {
            throw CoffreError.catalogUnreadable("jobs.status", reason: "unknown job status '\(status)'")
        }
        return (known, owner)
    }

    public func cancelQueuedJob(id: String, at date: Date) async throws -> Job? {
        try await transaction { [logger] connection in
            guard let queued = try await Self.jobs(
                "SELECT doc, cancel_requested FROM jobs WHERE id = \(id) AND status = 'Queued' FOR UPDATE", connection, logger: logger
            ).first else { return nil }
            let cancelled = queued.cancelledInQueue(at: date)
            try await connection.rows("""
                UPDATE jobs SET status = \(cancelled.status.rawValue), cancel_requested = true, doc = \(try JSONColumn.encode(cancelled))
                WHERE id = \(id)
                """, logger: logger)
            return cancelled
        }
    }

    public func claimJobs(owner: String, limits: ClaimLimits, at date: Date) async throws -> [Job] {
        guard limits.jobs > 0 else { return [] }
        // One short transaction. Queued rows another node is claiming are skipped, not waited
        // for. The fabrics with a limit are locked (in name order: no deadlock) so that two
        // nodes never both count the same free place; their counts are read after the lock.
        return try await transaction { [logger] connection in
            let queued = try await Self.jobs("""
                SELECT doc, cancel_requested FROM jobs
                WHERE status = 'Queued' AND type = \(limits.type.rawValue)
                  AND (\(limits.only)::text IS NULL OR id = \(limits.only))
                ORDER BY started_at, id LIMIT \(limits.jobs * 4 + 16)
                FOR UPDATE SKIP LOCKED
                """, connection, logger: logger)
            guard !queued.isEmpty else { return [] }
            let limited = Set(queued.compactMap { $0.details["fabric"] }).filter { limits.perFabric[$0] != nil }.sorted()
            var running: [String: Int] = [:]
            if !limited.isEmpty {
                try await connection.rows(
                    "SELECT name FROM fabrics WHERE name = ANY(\(limited)) ORDER BY name FOR UPDATE", logger: logger)
                for row in try await connection.rows("""
                    SELECT fabric, count(*) FROM jobs
                    WHERE status = 'InProgress' AND type = \(limits.type.rawValue) AND fabric = ANY(\(limited))
                    GROUP BY fabric
                    """, logger: logger) {
                    let (fabric, count) = try row.decode((String, Int).self)
                    running[fabric] = count
                }
            }
            var claimed: [Job] = []
            for job in limits.select(queued, running: running) {
                let record = ClaimLimits.claimed(job, owner: owner, at: date)
                try await connection.rows("""
                    UPDATE jobs SET status = 'InProgress', owner = \(owner), doc = \(try JSONColumn.encode(record))
                    WHERE id = \(job.id)
                    """, logger: logger)
                claimed.append(record)
            }
            return claimed
        }
    }

    public func job(id: String) async throws -> Job? {
        try await withConnection { [logger] connection in
            try await Self.jobs("SELECT doc, cancel_requested FROM jobs WHERE id = \(id)", connection, logger: logger).first
        }
    }

    public func jobs(_ filter: JobFilter) async throws -> [Job] {
        try await withConnection { connection in try await Self.jobs(filter, connection) }
    }

    static func jobs(_ filter: JobFilter, _ connection: PostgresConnection) async throws -> [Job] {
        // Every condition is bound; an absent one is `NULL IS NULL`.
        let query: PostgresQuery = """
            SELECT doc, cancel_requested FROM jobs
            WHERE (\(filter.type?.rawValue)::text IS NULL OR type = \(filter.type?.rawValue))
              AND (\(filter.status?.rawValue)::text IS NULL OR status = \(filter.status?.rawValue))
              AND (\(filter.vm?.cloudService)::text IS NULL
                   OR (vm_cloud_service = \(filter.vm?.cloudService) AND vm_name = \(filter.vm?.name)))
              AND (\(filter.since?.timeIntervalSinceReferenceDate)::float8 IS NULL
                   OR started_at >= \(filter.since?.timeIntervalSinceReferenceDate))
              AND (\(filter.until?.timeIntervalSinceReferenceDate)::float8 IS NULL
                   OR started_at < \(filter.until?.timeIntervalSinceReferenceDate))
            ORDER BY started_at DESC, id DESC
            LIMIT \(filter.limit)
            """
        return try await jobs(query, connection, logger: connection.logger)
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

    static func jobs(_ query: PostgresQuery, _ connection: PostgresConnection, logger: Logger) async throws -> [Job] {
        try await connection.rows(query, logger: logger).map { row in
            let (doc, cancelRequested) = try row.decode((String, Bool).self)
            var job: Job = try JSONColumn.decode(doc, column: "jobs.doc")
            job.cancelRequested = cancelRequested
            return job
        }
    }
}
