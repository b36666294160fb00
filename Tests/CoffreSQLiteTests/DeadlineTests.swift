@testable import CoffrePostgres
import Synchronization
import Testing

/// The PostgreSQL catalog's timeout: an operation that ignores cancellation (a query on a
/// connection whose server went away) must not hold its caller past the limit.
@Suite struct DeadlineTests {
    struct Expired: Error {}

    @Test func anOperationThatIgnoresCancellationIsNotWaitedForPastTheLimit() async throws {
        let released = Mutex(false)
        let finished = Mutex(false)
        await #expect(throws: Expired.self) {
            _ = try await within(.milliseconds(100), {
                // Deaf to cancellation until the test lets it go (a minute at most), as a query whose
                // answer never comes. No timing is assumed: however late the limit's timer runs on a
                // busy machine, the caller must get its error while this still waits.
                let end = ContinuousClock.now + .seconds(60)
                while !released.withLock({ $0 }), ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(20)) }
                finished.withLock { $0 = true }
                return 1
            }, expired: { Expired() })
        }
        #expect(!finished.withLock { $0 }, "the caller got its error only once the operation ended")
        released.withLock { $0 = true }
    }

    @Test func aResultOrAnErrorInTimeComesBackAsItIs() async throws {
        #expect(try await within(.seconds(30), { 42 }, expired: { Expired() }) == 42)
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            _ = try await within(.seconds(30), { () async throws -> Int in throw Refused() }, expired: { Expired() })
        }
    }

    @Test func cancellingTheCallerDoesNotCancelTheOperation() async throws {
        let done = Mutex(false)
        let caller = Task {
            try await within(.seconds(30), {
                try await Task.sleep(for: .milliseconds(200))
                done.withLock { $0 = true }
                return 7
            }, expired: { Expired() })
        }
        caller.cancel()
        // The operation (recording how a cancelled job ended) still completes, and its value arrives.
        #expect(try await caller.value == 7)
        #expect(done.withLock { $0 })
    }
}
