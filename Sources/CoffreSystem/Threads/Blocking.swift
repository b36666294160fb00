import Foundation
import Synchronization

/// Set when the task that started some blocking work is cancelled; the work polls it.
package final class CancellationFlag: Sendable {
    private let state = Mutex(false)

    package init() {}

    package var isSet: Bool { state.withLock { $0 } }
    package func set() { state.withLock { $0 = true } }
}

/// Runs blocking work (a disk copy, a child process's supervision, a libvirt call, a vault
/// operation) on a thread of its own, so it never holds one of the few threads of Swift's
/// cooperative pool.
///
/// Cancelling the calling task sets the flag `body` receives; `body` decides how to stop.
/// libvirt keeps its last error per thread: a call and the reading of its error belong in
/// one `body`.
package func runOnThread<T: Sendable>(_ body: @escaping @Sendable (CancellationFlag) throws -> T) async throws -> T {
    try await runOnThread { flag in Result { try body(flag) } }.get()
}

/// `runOnThread` for work that cannot fail (clean-up that must run even when the task is
/// cancelled: closing a session, removing a scratch folder).
package func runOnThread<T: Sendable>(_ body: @escaping @Sendable (CancellationFlag) -> T) async -> T {
    let flag = CancellationFlag()
    return await withTaskCancellationHandler {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            // Set before the thread starts when the task is already cancelled.
            if Task.isCancelled { flag.set() }
            Thread.detachNewThread {
                continuation.resume(returning: body(flag))
            }
        }
    } onCancel: {
        flag.set()
    }
}

/// Runs `body(worker)` on `count` threads of their own and returns when every one has ended.
///
/// Threads of their own, not Dispatch's global queue: a job whose workers wait on a slow disk
/// (a held NBD export, a stalled read) must not starve the next job of workers, and Dispatch
/// adds threads only slowly when its few are blocked (a job waited ~8 s, decision 0015). The body polls `CancellationFlag` to stop
/// early when the calling task is cancelled.
package func runOnThreads(_ count: Int, _ body: @escaping @Sendable (_ worker: Int, CancellationFlag) -> Void) async {
    let flag = CancellationFlag()
    let remaining = Mutex(max(1, count))
    await withTaskCancellationHandler {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if Task.isCancelled { flag.set() }
            for worker in 0..<max(1, count) {
                Thread.detachNewThread {
                    body(worker, flag)
                    let last = remaining.withLock { remaining -> Bool in
                        remaining -= 1
                        return remaining == 0
                    }
                    if last { continuation.resume() }
                }
            }
        }
    } onCancel: {
        flag.set()
    }
}
