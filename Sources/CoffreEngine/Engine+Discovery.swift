public import CoffreCore
import Foundation

/// The result of asking for jobs on many VMs at once: a job per VM that could start, an error
/// per VM that could not (R2, P3).
public struct BulkResult: Sendable {
    public var jobs: [Job] = []
    public var errors: [(vm: String, error: CoffreError)] = []
    public init() {}
}

extension Engine {
    /// Starts a Discovery job (D1–D4): every fabric is asked for its VMs. A fabric that cannot be
    /// reached fails the job with the seed's retry-in-15-minutes error naming it; the other
    /// fabrics' answers are kept. Only one discovery runs at a time (D2).
    public func discover() async throws -> Job {
        try await runner.launch(.discovery, vm: nil, lock: "discovery") { job in
            var failures: [CoffreError] = []
            for fabric in self.fabrics {
                do {
                    try await job.step("Discover fabric \(fabric.name)") {
                        let found = try await fabric.discover()
                        try job.checkCancelled()
                        let changes = try await self.catalog.applyDiscovery(
                            fabric: fabric.name, vms: found, at: self.clock.now())
                        job.note("\(found.count) VMs: \(changes.added.count) new, \(changes.updated.count) known, \(changes.vanished.count) vanished")
                    }
                } catch let error where isCancellation(error) {
                    throw error
                } catch {
                    failures.append(.discoveryInternalError(fabric: fabric.name, detail: Self.describe(error)))
                }
            }
            if let first = failures.first {
                throw failures.count == 1 ? first : CoffreError(
                    first.code, failures.map(\.message).joined(separator: "; "), workaround: first.workaround)
            }
        }
    }

    /// An error in one line for a job's message.
    static func describe(_ error: any Error) -> String {
        if let error = error as? CoffreError { return error.message }
        return String(describing: error)
    }
}
