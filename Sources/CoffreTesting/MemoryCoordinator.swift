public import CoffreCore
import Foundation
import Synchronization

/// `NodeCoordinator` in memory for unit tests, with its own clock standing for the database's:
/// a test lets a lease lapse by moving that clock.
public final class MemoryCoordinator: NodeCoordinator {
    private struct State {
        var nodes: [String: (announcement: NodeAnnouncement, startedAt: Date, heartbeat: Date, running: Int)] = [:]
        var leader: (node: String, term: Int64, expiresAt: Date)?
    }

    private let state = Mutex(State())
    public let clock: any TimeSource

    public init(clock: any TimeSource) {
        self.clock = clock
    }

    public func heartbeat(_ node: NodeAnnouncement, runningJobs: Int) async throws {
        let now = clock.now()
        state.withLock { state in
            let startedAt = state.nodes[node.id]?.startedAt ?? now
            state.nodes[node.id] = (node, startedAt, now, runningJobs)
        }
    }

    public func nodes(lease: Duration, forgetAfter: Duration) async throws -> [NodeStatus] {
        let now = clock.now()
        return state.withLock { state in
            state.nodes.values
                .filter { $0.announcement.kind == .node && now.timeIntervalSince($0.heartbeat) < forgetAfter.inSeconds }
                .sorted { $0.announcement.id < $1.announcement.id }
                .map { node in
                    let leads = state.leader.map { $0.node == node.announcement.id && $0.expiresAt > now } ?? false
                    return NodeStatus(id: node.announcement.id, address: node.announcement.address,
                                      version: node.announcement.version, startedAt: node.startedAt,
                                      lastHeartbeat: node.heartbeat,
                                      alive: now.timeIntervalSince(node.heartbeat) < lease.inSeconds,
                                      leader: leads, runningJobs: node.running)
                }
        }
    }

    public func lead(node: String, lease: Duration) async throws -> Leadership? {
        let now = clock.now()
        return state.withLock { state in
            let term: Int64
            switch state.leader {
            case nil:
                term = 1
            case let current? where current.node == node && current.expiresAt > now:
                term = current.term
            case let current? where current.expiresAt <= now:
                term = current.term + 1
            default:
                return nil
            }
            state.leader = (node, term, now.addingTimeInterval(lease.inSeconds))
            return Leadership(node: node, term: term, remaining: lease)
        }
    }

    public func resign(node: String, term: Int64) async throws {
        let now = clock.now()
        state.withLock { state in
            if let current = state.leader, current.node == node, current.term == term {
                state.leader = (node, term, now)
            }
        }
    }

    public func holdsLeadership(node: String, term: Int64) async throws -> Bool {
        let now = clock.now()
        return state.withLock { state in
            state.leader.map { $0.node == node && $0.term == term && $0.expiresAt > now } ?? false
        }
    }

    public func isAlive(node: String, lease: Duration) async throws -> Bool? {
        let now = clock.now()
        return state.withLock { state in
            state.nodes[node].map { now.timeIntervalSince($0.heartbeat) < lease.inSeconds }
        }
    }

    public func databaseTime() async throws -> Date { clock.now() }
}
