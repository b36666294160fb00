public import CoffreCore
import Foundation
internal import PostgresNIO

/// Nodes and the leader lease in the database, on its clock: a lease is `now() + interval`
/// when granted and is over when `now()` passes it, whatever the nodes' own clocks say.
extension PostgresCatalog: NodeCoordinator {
    public func databaseTime() async throws -> Date {
        try await withConnection { connection in
            let rows = try await connection.rows("SELECT extract(epoch FROM clock_timestamp())::float8", logger: connection.logger)
            guard let seconds = try rows.first?.decode(Double.self) else {
                throw CoffreError(.internalError, "PostgreSQL did not answer SELECT clock_timestamp()", workaround: "Report it")
            }
            return Date(timeIntervalSince1970: seconds)
        }
    }

    public func heartbeat(_ node: NodeAnnouncement, runningJobs: Int) async throws {
        try await withConnection { connection in
            try await connection.rows("""
                INSERT INTO nodes (id, address, version, started_at, heartbeat_at, running_jobs, kind)
                VALUES (\(node.id), \(node.address), \(node.version), now(), now(), \(runningJobs), \(node.kind.rawValue))
                ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, version = EXCLUDED.version,
                    heartbeat_at = now(), running_jobs = EXCLUDED.running_jobs, kind = EXCLUDED.kind
                """, logger: connection.logger)
            guard node.kind == .node else { return }
            // Every command makes a client row: those silent for a day go (their jobs were
            // recovered within a lease of their last heartbeat).
            try await connection.rows("""
                DELETE FROM nodes WHERE kind = 'client' AND heartbeat_at < now() - interval '1 day'
                """, logger: connection.logger)
        }
    }

    public func nodes(lease: Duration, forgetAfter: Duration) async throws -> [NodeStatus] {
        try await withConnection { connection in
            let rows = try await connection.rows("""
                SELECT n.id, n.address, n.version,
                       extract(epoch FROM n.started_at)::float8, extract(epoch FROM n.heartbeat_at)::float8,
                       n.heartbeat_at > now() - make_interval(secs => \(lease.inSeconds)),
                       coalesce(l.node = n.id AND l.expires_at > now(), false),
                       n.running_jobs
                FROM nodes n LEFT JOIN leader l ON l.id = 1
                WHERE n.kind = 'node' AND n.heartbeat_at > now() - make_interval(secs => \(forgetAfter.inSeconds))
                ORDER BY n.id
                """, logger: connection.logger)
            return try rows.map { row in
                let (id, address, version, started, heartbeat, alive, leader, running) =
                    try row.decode((String, String, String, Double, Double, Bool, Bool, Int).self)
                return NodeStatus(id: id, address: address, version: version,
                                  startedAt: Date(timeIntervalSince1970: started),
                                  lastHeartbeat: Date(timeIntervalSince1970: heartbeat),
                                  alive: alive, leader: leader, runningJobs: running)
            }
        }
    }

    public func lead(node: String, lease: Duration) async throws -> Leadership? {
        // One statement: take the free or lapsed lease, or renew one's own. The term grows
        // whenever the lease did not simply continue in the same hands.
        try await withConnection { connection in
            let rows = try await connection.rows("""
                INSERT INTO leader AS l (id, node, term, expires_at)
                VALUES (1, \(node), 1, now() + make_interval(secs => \(lease.inSeconds)))
                ON CONFLICT (id) DO UPDATE SET
                    term = CASE WHEN l.node = EXCLUDED.node AND l.expires_at > now() THEN l.term ELSE l.term + 1 END,
                    node = EXCLUDED.node,
                    expires_at = EXCLUDED.expires_at
                WHERE l.node = EXCLUDED.node OR l.expires_at <= now()
                RETURNING term, extract(epoch FROM (expires_at - now()))::float8
                """, logger: connection.logger)
            guard let row = rows.first else { return nil }
            let (term, remaining) = try row.decode((Int64, Double).self)
            return Leadership(node: node, term: term, remaining: .milliseconds(Int64(remaining * 1000)))
        }
    }

    public func resign(node: String, term: Int64) async throws {
        try await withConnection { connection in
            try await connection.rows(
                "UPDATE leader SET expires_at = now() WHERE id = 1 AND node = \(node) AND term = \(term)",
                logger: connection.logger)
        }
    }

    public func holdsLeadership(node: String, term: Int64) async throws -> Bool {
        try await withConnection { connection in
            try await connection.rows(
                "SELECT 1 FROM leader WHERE id = 1 AND node = \(node) AND term = \(term) AND expires_at > now()",
                logger: connection.logger).count == 1
        }
    }

    public func isAlive(node: String, lease: Duration) async throws -> Bool? {
        try await withConnection { connection in
            let rows = try await connection.rows(
                "SELECT heartbeat_at > now() - make_interval(secs => \(lease.inSeconds)) FROM nodes WHERE id = \(node)",
                logger: connection.logger)
            return try rows.first.map { try $0.decode(Bool.self) }
        }
    }
}
