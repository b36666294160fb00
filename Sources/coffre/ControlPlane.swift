import CoffreCore
import CoffreEngine
import CoffreServer
import Foundation

/// What the VM commands need from Coffre, whether it runs in this process on the data
/// folder (`LocalControlPlane`) or behind `coffre serve` (`RemoteControlPlane`, `--server`).
///
/// Both answer with the REST API's types, so a command prints the same text and the same
/// `--json` in either mode.
protocol ControlPlane: Sendable {
    func discover() async throws -> Job
    func vms(unregistered: Bool) async throws -> [VMView]
    func register(_ vms: [String]) async throws -> BulkResponse
    func protect(_ vms: [String], policy: String, change: Bool) async throws -> BulkResponse
    func dashboard() async throws -> Dashboard
    func nodes() async throws -> [NodeStatus]

    func createPolicy(_ policy: Policy) async throws
    func updatePolicy(_ policy: Policy) async throws
    func policies() async throws -> [Policy]
    func policy(named name: String) async throws -> PolicyView

    func backupNow(_ vm: String, retainUntil: Date?) async throws -> Job
    func points(of vm: String) async throws -> PointsView
    /// A folder destination is as typed: the local plane resolves it against the current
    /// folder, the server against its restore root (absolute paths need an admin token).
    func restore(_ vm: String, point: String, to destination: RestoreDestination) async throws -> Job
    func verify(_ vm: String, point: String?, _ request: Engine.VerificationRequest) async throws -> Job
    func stopProtection(_ vm: String, deleteData: Bool) async throws -> Job
    func undelete(_ vm: String) async throws -> Job
    func resume(_ vm: String) async throws -> Job

    func jobs(_ query: JobQuery) async throws -> [Job]
    func job(_ id: String) async throws -> Job
    func cancel(jobID: String) async throws -> Job
    /// Returns when the job has ended; `onUpdate` sees it while it runs.
    func wait(for id: String, onUpdate: (@Sendable (Job) -> Void)?) async throws -> Job
}

/// The engine of the data folder, in this process.
struct LocalControlPlane: ControlPlane {
    let engine: Engine

    func discover() async throws -> Job { try await engine.discover() }
    func vms(unregistered: Bool) async throws -> [VMView] { try await engine.vmViews(unregistered: unregistered) }
    func register(_ vms: [String]) async throws -> BulkResponse { BulkResponse(await engine.register(vms)) }
    func protect(_ vms: [String], policy: String, change: Bool) async throws -> BulkResponse {
        BulkResponse(await engine.protect(vms, policy: policy, change: change))
    }
    func dashboard() async throws -> Dashboard { try await engine.dashboard() }
    func nodes() async throws -> [NodeStatus] { try await engine.nodes() }

    func createPolicy(_ policy: Policy) async throws { try await engine.createPolicy(policy) }
    func updatePolicy(_ policy: Policy) async throws { try await engine.updatePolicy(policy) }
    func policies() async throws -> [Policy] { try await engine.policies() }
    func policy(named name: String) async throws -> PolicyView { try await engine.policyView(named: name) }

    func backupNow(_ vm: String, retainUntil: Date?) async throws -> Job { try await engine.backupNow(vm, retainUntil: retainUntil) }
    func points(of vm: String) async throws -> PointsView { try await engine.pointsView(of: vm) }
    func restore(_ vm: String, point: String, to destination: RestoreDestination) async throws -> Job {
        var destination = destination
        if case .folder(let path, let format) = destination, !path.hasPrefix("/") {
            destination = .folder(FileManager.default.currentDirectoryPath + "/" + path, format: format)
        }
        return try await engine.restore(vm, point: point, to: destination)
    }
    func verify(_ vm: String, point: String?, _ request: Engine.VerificationRequest) async throws -> Job {
        try await engine.verify(vm, point: point, request)
    }
    func stopProtection(_ vm: String, deleteData: Bool) async throws -> Job { try await engine.stopProtection(vm, deleteData: deleteData) }
    func undelete(_ vm: String) async throws -> Job { try await engine.undelete(vm) }
    func resume(_ vm: String) async throws -> Job { try await engine.resume(vm) }

    func jobs(_ query: JobQuery) async throws -> [Job] { try await engine.jobs(matching: query) }
    func job(_ id: String) async throws -> Job { try await engine.job(id) }
    func cancel(jobID: String) async throws -> Job { try await engine.cancel(jobID: jobID) }
    func wait(for id: String, onUpdate: (@Sendable (Job) -> Void)?) async throws -> Job {
        try await engine.wait(for: id, onUpdate: onUpdate)
    }
}
