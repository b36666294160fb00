#if Libvirt
import Foundation
import Synchronization

/// Set when the task that started some blocking work is cancelled; the work polls it.
final class CancellationFlag: Sendable {
    private let state = Mutex(false)

    var isSet: Bool { state.withLock { $0 } }
    func set() { state.withLock { $0 = true } }
}

/// Runs blocking libvirt calls on a thread of their own, so they never hold one of the few
/// threads of Swift's cooperative pool (the same idea as CoffreLocalFabric's `runOnThread`).
///
/// libvirt keeps its last error per thread: a call and the reading of its error must happen
/// inside one `body`. Cancelling the calling task sets the flag `body` receives; long loops
/// (polling guest-exec, chunked writes) check it between calls.
func runOnThread<T: Sendable>(_ body: @escaping @Sendable (CancellationFlag) throws -> T) async throws -> T {
    let flag = CancellationFlag()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            if Task.isCancelled { flag.set() }
            Thread.detachNewThread {
                continuation.resume(with: Result { try body(flag) })
            }
        }
    } onCancel: {
        flag.set()
    }
}
#endif
