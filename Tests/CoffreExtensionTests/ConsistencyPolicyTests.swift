import CoffreCore
@testable import CoffreExtension
import Testing

@Suite("Consistency (C1) and continueBackupOnFailure (S4)")
struct ConsistencyPolicyTests {
    @Test("After prepare: application-consistent only with both scripts and a freeze")
    func afterPrepare() {
        #expect(ConsistencyPolicy.afterPrepare(frozen: true, preScriptSucceeded: true, postScriptConfigured: true) == .applicationConsistent)
        #expect(ConsistencyPolicy.afterPrepare(frozen: true, preScriptSucceeded: false, postScriptConfigured: true) == .fileSystemConsistent)
        #expect(ConsistencyPolicy.afterPrepare(frozen: true, preScriptSucceeded: true, postScriptConfigured: false) == .fileSystemConsistent)
        #expect(ConsistencyPolicy.afterPrepare(frozen: true, preScriptSucceeded: false, postScriptConfigured: false) == .fileSystemConsistent)
        #expect(ConsistencyPolicy.afterPrepare(frozen: false, preScriptSucceeded: true, postScriptConfigured: true) == .crashConsistent)
    }

    @Test("A failed script with continueBackupOnFailure=false fails a multi-disk backup, not a single-disk one")
    func prepareDecision() {
        #expect(ConsistencyPolicy.prepare(scriptFailed: false, continueOnFailure: false, disks: 3) == .init(ok: true, mayFreeze: true))
        #expect(ConsistencyPolicy.prepare(scriptFailed: true, continueOnFailure: true, disks: 3) == .init(ok: true, mayFreeze: true))
        #expect(ConsistencyPolicy.prepare(scriptFailed: true, continueOnFailure: false, disks: 3) == .init(ok: false, mayFreeze: false))
        #expect(ConsistencyPolicy.prepare(scriptFailed: true, continueOnFailure: false, disks: 0) == .init(ok: false, mayFreeze: false))
        #expect(ConsistencyPolicy.prepare(scriptFailed: true, continueOnFailure: false, disks: 1) == .init(ok: true, mayFreeze: false))
    }

    @Test("After release: a failed post-script downgrades or fails; an early thaw is crash-consistent")
    func afterRelease() {
        func final(_ prepared: Consistency, failed: Bool, cont: Bool = true, disks: Int = 2, early: Bool = false) -> (Consistency, Bool) {
            let r = ConsistencyPolicy.afterRelease(prepared: prepared, postScriptFailed: failed, continueOnFailure: cont, disks: disks, thawedEarly: early)
            return (r.consistency, r.ok)
        }
        #expect(final(.applicationConsistent, failed: false) == (.applicationConsistent, true))
        #expect(final(.applicationConsistent, failed: true) == (.fileSystemConsistent, true))
        #expect(final(.fileSystemConsistent, failed: true) == (.fileSystemConsistent, true))
        #expect(final(.crashConsistent, failed: true) == (.crashConsistent, true))
        #expect(final(.applicationConsistent, failed: true, cont: false) == (.fileSystemConsistent, false))
        #expect(final(.applicationConsistent, failed: true, cont: false, disks: 1) == (.crashConsistent, true))
        #expect(final(.applicationConsistent, failed: false, early: true) == (.crashConsistent, true))
    }
}
