public import CoffreCore
import Foundation
import Logging
import Synchronization

/// What this engine knows of its own leadership: the term the database granted, and until
/// when — on this process's monotonic clock, counted from before the request was sent, less a
/// margin — it may act as leader without asking again.
struct LeaderState: Sendable {
    var term: Int64?
    var validUntil: ContinuousClock.Instant?

    func isValid(at now: ContinuousClock.Instant) -> Bool {
        guard term != nil, let validUntil else { return false }
        return now < validUntil
    }

    /// Records what the database granted (nil: another node leads) to a request sent at
    /// `sent`, trusting it `margin` less long than granted (the answer's way back, the clocks'
    /// rates). Returns the term held before, if it still ran then.
    mutating func grant(_ granted: Leadership?, sentAt sent: ContinuousClock.Instant, margin: Duration) -> Int64? {
        let previous = isValid(at: sent) ? term : nil
        term = granted?.term
        validUntil = granted.map { sent + $0.remaining - margin }
        return previous
    }
}

/// This node among the others sharing the catalog: its heartbeats, the leader lease and its
/// term, and what it knows of the other nodes. Without a coordinator, the node is alone and
/// always leads.
final class Membership: Sendable {
    struct Settings: Sendable {
        var lease: Duration
        var heartbeat: Duration
        var forgetAfter: Duration
        var version: String
    }

    let coordinator: (any NodeCoordinator)?
    let owner: String
    private let settings: Settings
    private let runner: JobRunner
    private let clock: any TimeSource
    private let startedAt: Date
    private let isOwnerAlive: @Sendable (String) -> Bool
    private let logger: Logger
    private let leader = Mutex(LeaderState())
    private let nodeAddress = Mutex("")
    private let clientBeats = Mutex<Task<Void, Never>?>(nil)

    init(coordinator: (any NodeCoordinator)?, owner: String, settings: Settings, runner: JobRunner, clock: any TimeSource,
         isOwnerAlive: @escaping @Sendable (String) -> Bool, logger: Logger) {
        self.coordinator = coordinator
        self.owner = owner
        self.settings = settings
        self.runner = runner
        self.clock = clock
        self.startedAt = clock.now()
        self.isOwnerAlive = isOwnerAlive
        self.logger = logger
    }

    /// Whether this engine may do the leader's work now: the scheduler, retention and
    /// collection, verification schedules, recovery of jobs of dead nodes. Without a
    /// coordinator it is the only node and always leads. With one, the lease must still run
    /// by this process's clock, and the database must still say the term is this node's
    /// (`fenced`: a leader presumed dead and replaced never acts under its old term).
    func mayLead(fenced: Bool = false) async -> Bool {
        guard let coordinator else { return true }
        let state = leader.withLock { $0 }
        guard state.isValid(at: .now), let term = state.term else { return false }
        guard fenced else { return true }
        do {
            return try await coordinator.holdsLeadership(node: owner, term: term)
        } catch {
            logger.warning("leader check failed: \(error)")
            return false
        }
    }

    /// The leader's term, when this engine leads (nil without a coordinator).
    var leaderTerm: Int64? { leader.withLock { $0.isValid(at: .now) ? $0.term : nil } }

    /// Where this node's API listens, for the others and `GET /nodes` (set by `coffre serve`
    /// once it is bound).
    func announce(address: String) {
        nodeAddress.withLock { $0 = address }
    }

    /// One heartbeat and, for a node, one claim or renewal of the leader lease. When the
    /// database cannot be reached for longer than the lease, this process stops its running
    /// jobs itself: by then the leader may have taken them for dead.
    func beat(as kind: NodeAnnouncement.Kind = .node) async {
        guard let coordinator else { return }
        let sent = ContinuousClock.now
        let announcement = NodeAnnouncement(id: owner, address: nodeAddress.withLock { $0 }, version: settings.version, kind: kind)
        do {
            try await coordinator.heartbeat(announcement, runningJobs: runner.runningJobIDs.count)
            runner.heartbeatTaken(sentAt: sent)
            guard kind == .node else { return }
            let granted = try await coordinator.lead(node: owner, lease: settings.lease)
            let previous = leader.withLock { $0.grant(granted, sentAt: sent, margin: leaseMargin) }
            if let granted, granted.term != previous {
                logger.notice("this node leads (term \(granted.term))")
            } else if granted == nil, previous != nil {
                logger.notice("this node no longer leads")
            }
        } catch {
            leader.withLock { state in
                if !state.isValid(at: .now) { state.term = nil }
            }
            logger.warning("heartbeat failed: \(error)")
            if runner.heartbeatLapsing, let silent = runner.silence, !runner.runningJobIDs.isEmpty {
                logger.error("no heartbeat for \(silent): stopping this node's jobs before others take them for dead")
                await runner.cancelAllAndWait(stopClaiming: false)
            }
        }
    }

    /// Heartbeats as a client from now on, every heartbeat interval, until this process ends: a
    /// command-line process that runs jobs on a shared catalog. The leader then sees it die
    /// (kill -9, power off, on any host) within the lease and recovers its jobs; without
    /// heartbeats, a process of another host would be assumed alive for ever. Without a
    /// coordinator it does nothing.
    func heartbeatAsClient() {
        guard coordinator != nil else { return }
        let interval = settings.heartbeat
        clientBeats.withLock { task in
            guard task == nil else { return }
            task = Task { [weak self] in
                while !Task.isCancelled {
                    guard await self?.beat(as: .client) != nil else { return }
                    try? await Task.sleep(for: interval)
                }
            }
        }
    }

    deinit {
        clientBeats.withLock { $0?.cancel() }
    }

    /// How much sooner than granted this node stops trusting its lease: half a heartbeat.
    private var leaseMargin: Duration { settings.heartbeat / 2 }

    /// Claims the leader lease for one pass of leader's work outside `run()` (`coffre scheduler
    /// --once`): true when this engine leads (always, without a coordinator). Release it with
    /// `resign()` after the pass.
    func claimLeadership() async -> Bool {
        guard let coordinator else { return true }
        let sent = ContinuousClock.now
        do {
            let granted = try await coordinator.lead(node: owner, lease: settings.lease)
            _ = leader.withLock { $0.grant(granted, sentAt: sent, margin: leaseMargin) }
            return granted != nil
        } catch {
            logger.warning("leader lease: \(error)")
            return false
        }
    }

    /// Gives the leader lease up at once (graceful stop), so another node takes over without
    /// waiting for it to lapse.
    func resign() async {
        guard let coordinator, let term = leader.withLock({ state -> Int64? in
            defer { state.term = nil }
            return state.term
        }) else { return }
        try? await coordinator.resign(node: owner, term: term)
    }

    /// The nodes sharing the catalog: the live ones and those heard of in the last
    /// `nodeForgetAfter`, exactly one of them the leader while one holds the lease. Without a
    /// coordinator, this engine alone.
    func nodes() async throws -> [NodeStatus] {
        guard let coordinator else {
            let now = clock.now()
            return [NodeStatus(id: owner, address: nodeAddress.withLock { $0 }, version: settings.version,
                               startedAt: startedAt, lastHeartbeat: now, alive: true, leader: true,
                               runningJobs: runner.runningJobIDs.count)]
        }
        return try await coordinator.nodes(lease: settings.lease, forgetAfter: settings.forgetAfter)
    }

    /// Whether the engine that owns a job still runs: a process of this host is asked by its
    /// pid; a node of another host by its heartbeat. An owner of another host that never
    /// heartbeated (a command-line process) is assumed alive.
    func ownerIsAlive(_ owner: String) async -> Bool {
        guard isOwnerAlive(owner) else { return false }
        guard let coordinator, owner != self.owner else { return true }
        do {
            return try await coordinator.isAlive(node: owner, lease: settings.lease) ?? true
        } catch {
            return true
        }
    }
}

/// Membership as the application and the engine's other parts see it.
extension Engine {
    /// Whether this engine may do the leader's work now (see `Membership.mayLead`).
    func mayLead(fenced: Bool = false) async -> Bool { await membership.mayLead(fenced: fenced) }

    /// The leader's term, when this engine leads (nil without a coordinator).
    public var leaderTerm: Int64? { membership.leaderTerm }

    /// Where this node's API listens, for the others and `GET /nodes` (set by `coffre serve`
    /// once it is bound).
    public func announce(address: String) { membership.announce(address: address) }

    /// Claims the leader lease for one pass of leader's work outside `run()` (`coffre scheduler
    /// --once`): true when this engine leads. Release it with `resign()` after the pass.
    public func claimLeadership() async -> Bool { await membership.claimLeadership() }

    /// A command-line process running jobs on a shared catalog heartbeats from now on, as a
    /// client: not listed among the nodes and never leading, but the leader sees it die within
    /// the lease and recovers its jobs (`Membership.heartbeatAsClient`).
    public func heartbeatAsClient() { membership.heartbeatAsClient() }

    /// Gives the leader lease up at once (graceful stop).
    public func resign() async { await membership.resign() }

    /// The nodes sharing the catalog, exactly one of them the leader while one holds the lease.
    public func nodes() async throws -> [NodeStatus] { try await membership.nodes() }

    /// One heartbeat (`beat`), then the recovery of this node's own jobs whose end the
    /// database missed.
    func beatAndRecover() async {
        await membership.beat()
        guard coordinator != nil else { return }
        do {
            try await recoverOwnJobs()
        } catch {
            logger.warning("recovery of this node's jobs: \(error)")
        }
    }
}
