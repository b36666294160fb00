import CoffreCore
import CoffreSystem
import Synchronization

/// Runs `body` over `items` on `width` threads of their own (`runOnThreads`), each with its
/// own state (codec workspace, buffers). Stops at the first error or on task cancellation,
/// and rethrows it.
func runParallel<Item: Sendable, State>(
    _ items: [Item], width: Int,
    makeState: @escaping @Sendable () -> State,
    body: @escaping @Sendable (inout State, Item) throws -> Void
) async throws {
    let control = ParallelControl()
    await runOnThreads(min(width, items.count)) { _, cancelled in
        var state = makeState()
        while let index = control.next(limit: items.count) {
            if cancelled.isSet {
                control.fail(CoffreError.cancelled())
                return
            }
            do {
                try body(&state, items[index])
            } catch {
                control.fail(error)
            }
        }
    }
    if let error = control.error { throw error }
    if Task.isCancelled { throw CoffreError.cancelled() }
}

/// Shared state of one `runParallel` call.
final class ParallelControl: Sendable {
    private struct State {
        var next = 0
        var error: (any Error)?
    }
    private let state = Mutex(State())

    func next(limit: Int) -> Int? {
        state.withLock { s in
            guard s.error == nil, s.next < limit else { return nil }
            defer { s.next += 1 }
            return s.next
        }
    }

    func fail(_ error: any Error) {
        state.withLock { s in if s.error == nil { s.error = error } }
    }

    var error: (any Error)? { state.withLock { $0.error } }
}
