import Synchronization

/// Runs `operation` in a task of its own and returns its result, or throws `expired()` once
/// `limit` has passed, whichever comes first. On expiry the operation is cancelled but not
/// waited for: unlike a task group, which waits for every child, this returns even when the
/// operation ignores cancellation. Cancelling the caller does not cancel the operation (a job
/// being cancelled must still record how it ended).
func within<T: Sendable>(
    _ limit: Duration, _ operation: @escaping @Sendable () async throws -> T, expired: @escaping @Sendable () -> any Error
) async throws -> T {
    let work = Task { try await operation() }
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let once = ResumeOnce(continuation)
        let timer = Task {
            try await Task.sleep(for: limit)
            if once.resume(with: .failure(expired())) { work.cancel() }
        }
        Task {
            let result = await work.result
            timer.cancel()
            once.resume(with: result)
        }
    }
}

/// A continuation resumed by whichever of two racers comes first; the other's resume is dropped.
private final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, any Error>?>

    init(_ continuation: CheckedContinuation<T, any Error>) {
        self.continuation = Mutex(continuation)
    }

    /// Resumes the continuation if nobody did yet. Returns whether this call did.
    @discardableResult
    func resume(with result: Result<T, any Error>) -> Bool {
        guard let continuation = self.continuation.withLock({ stored -> CheckedContinuation<T, any Error>? in
            defer { stored = nil }
            return stored
        }) else { return false }
        continuation.resume(with: result)
        return true
    }
}
