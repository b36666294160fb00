public import Foundation

/// A process sharing the catalog as it announces itself to the others.
public struct NodeAnnouncement: Codable, Sendable, Equatable {
    /// What kind of process heartbeats.
    public enum Kind: String, Codable, Sendable {
        /// A `coffre serve` node: listed among the nodes, may lead, runs the queue.
        case node
        /// A command-line process (`coffre backup`, `coffre scheduler --once`) that runs jobs:
        /// not listed and never leads, but its heartbeat tells the leader when it died.
        case client
    }

    /// The node's name: its job owner name (`host:pid:starttime`), unique per process.
    public var id: String
    /// Where its API listens (`host:port`); empty for a client.
    public var address: String
    public var version: String
    public var kind: Kind

    public init(id: String, address: String, version: String, kind: Kind = .node) {
        self.id = id
        self.address = address
        self.version = version
        self.kind = kind
    }
}

/// A node as the catalog sees it.
public struct NodeStatus: Codable, Sendable, Equatable {
    public var id: String
    public var address: String
    public var version: String
    /// When it first announced itself.
    public var startedAt: Date
    /// Its last heartbeat, on the database's clock.
    public var lastHeartbeat: Date
    /// Whether that heartbeat is younger than the lease time: a node that stopped or died is
    /// listed, not alive, until it is forgotten.
    public var alive: Bool
    /// Whether it holds the leader lease now; at most one node does.
    public var leader: Bool
    /// Jobs it ran at its last heartbeat.
    public var runningJobs: Int

    public init(id: String, address: String, version: String, startedAt: Date, lastHeartbeat: Date, alive: Bool,
                leader: Bool, runningJobs: Int) {
        self.id = id
        self.address = address
        self.version = version
        self.startedAt = startedAt
        self.lastHeartbeat = lastHeartbeat
        self.alive = alive
        self.leader = leader
        self.runningJobs = runningJobs
    }
}

/// The leader lease as granted: which node, which term, for how long from the database's now.
public struct Leadership: Sendable, Equatable {
    public var node: String
    /// Grows by one each time the lease changes hands (or lapses and is taken again); what a
    /// leader did under an older term is what a presumed-dead leader did.
    public var term: Int64
    /// How long the lease runs from when the database granted it.
    public var remaining: Duration

    public init(node: String, term: Int64, remaining: Duration) {
        self.node = node
        self.term = term
        self.remaining = remaining
    }
}

/// How several nodes sharing a catalog know of each other and agree on one leader, with the
/// database as the only coordinator and its clock as the only clock (no node compares its own
/// clock with another's). Catalogs that several machines share (PostgreSQL) provide it; with
/// none, an engine is the only node and leads.
public protocol NodeCoordinator: Sendable {
    /// Records that `node` runs, now (the database's now), with `runningJobs` jobs.
    func heartbeat(_ node: NodeAnnouncement, runningJobs: Int) async throws
    /// Every node (not client) heard of in the last `forgetAfter`, alive when its heartbeat is
    /// younger than `lease`; sorted by id.
    func nodes(lease: Duration, forgetAfter: Duration) async throws -> [NodeStatus]
    /// Takes the leader lease for `lease` when it is free or lapsed, or renews it when `node`
    /// holds it; nil when another node holds it.
    func lead(node: String, lease: Duration) async throws -> Leadership?
    /// Gives the lease up at once (graceful stop), if `node` still holds it under `term`.
    func resign(node: String, term: Int64) async throws
    /// Whether `node` still holds the lease under `term` (fencing before a leader's action).
    func holdsLeadership(node: String, term: Int64) async throws -> Bool
    /// Whether `node` (or client) heartbeated in the last `lease`; nil when it never announced
    /// itself.
    func isAlive(node: String, lease: Duration) async throws -> Bool?
    /// The database's clock now (`coffre doctor` compares this machine's with it).
    func databaseTime() async throws -> Date
}
