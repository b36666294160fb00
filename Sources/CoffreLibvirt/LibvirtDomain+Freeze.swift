#if Libvirt
import CLibvirt
import CoffreCore
import CoffreSystem

/// Application-consistent backups: the guest's file systems frozen while the snapshot is taken.
extension LibvirtDomain {
    /// Freezes every freezable file system of the guest (`virDomainFSFreeze`, through the agent).
    /// - Returns: how many file systems were frozen.
    @discardableResult
    public func guestFSFreeze() async throws -> Int {
        try await runOnThread { _ in try self.freezeNow() }
    }

    /// Thaws what `guestFSFreeze` froze.
    /// - Returns: how many file systems were thawed.
    @discardableResult
    public func guestFSThaw() async throws -> Int {
        try await runOnThread { _ in try self.thawNow() }
    }

    /// Whether the guest's file systems are frozen now (`guest-fsfreeze-status`).
    public func guestFSIsFrozen() async throws -> Bool {
        try await runOnThread { _ in try self.agentCall("guest-fsfreeze-status") as? String == "frozen" }
    }

    /// Runs `body` with the guest's file systems frozen, and thaws them afterwards, also when
    /// `body` throws or the task is cancelled.
    public func withFrozenGuest<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await guestFSFreeze()
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        // The thaw runs on its own thread and ignores cancellation: a guest must never stay frozen.
        try await runOnThread { _ in _ = try self.thawNow() }
        return try result.get()
    }

    func freezeNow() throws -> Int {
        let count = virDomainFSFreeze(pointer, nil, 0, 0)
        guard count >= 0 else { throw lastLibvirtError("freeze the file systems of \(name)", domain: name, agentCommand: "guest-fsfreeze-freeze") }
        return Int(count)
    }

    func thawNow() throws -> Int {
        let count = virDomainFSThaw(pointer, nil, 0, 0)
        guard count >= 0 else { throw lastLibvirtError("thaw the file systems of \(name)", domain: name, agentCommand: "guest-fsfreeze-thaw") }
        return Int(count)
    }
}
#endif
