import CoffreCore

/// Runs `body`, cancelling it and throwing `timeoutError()` when it takes longer than `limit`.
///
/// The body must honour cancellation for the timeout to take effect promptly: the error is
/// thrown once the body has ended. A body that ignores cancellation and returns a value after
/// the limit (a hypervisor that finishes a snapshot anyway) hands it to `discardingLate`,
/// which must undo it — a value nobody receives must not leak what it holds.
func withTimeout<T: Sendable>(
    _ limit: Duration, error timeoutError: @escaping @Sendable () -> CoffreError,
    discardingLate: (@Sendable (T) async -> Void)? = nil,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        // Stops the body and undoes what it returns anyway.
        func discardRest() async {
            group.cancelAll()
            while let next = await group.nextResult() {
                if case .success(let late?) = next { await discardingLate?(late) }
            }
        }
        let first: T?
        do {
            guard let next = try await group.next() else { throw CancellationError() }
            first = next
        } catch {
            // The body failed, or the caller was cancelled (the sleep throws at once) while the
            // body still runs: what it returns after all must not outlive the caller's error.
            await discardRest()
            throw error
        }
        if let value = first {
            group.cancelAll()
            return value
        }
        // The limit came first.
        await discardRest()
        throw timeoutError()
    }
}

/// Compares dotted version numbers numerically: `2.10` is newer than `2.9`.
enum Version {
    static func isOlder(_ version: String, than minimum: String) -> Bool {
        let lhs = numbers(version), rhs = numbers(minimum)
        for index in 0..<max(lhs.count, rhs.count) {
            let a = index < lhs.count ? lhs[index] : 0
            let b = index < rhs.count ? rhs[index] : 0
            if a != b { return a < b }
        }
        return false
    }

    private static func numbers(_ text: String) -> [Int] {
        text.split(whereSeparator: { !$0.isNumber }).map { Int($0) ?? 0 }
    }
}
