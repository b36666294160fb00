import CoffreCore
import Foundation
import Logging

/// One backup of one VM, from the guest's preparation to the committed point (B1, B4, C1, C2).
/// The engine resolves the item, its VM's fabric and the job; the pipeline does the rest.
struct BackupPipeline: Sendable {
    let catalog: any Catalog
    let store: any PointStore
    let clock: any TimeSource
    let configuration: Engine.Configuration
    let fabric: any Fabric
    let logger: Logger

    /// One backup (B1, B4): guest prepare → snapshot → guest release → every disk copied in
    /// parallel → snapshot deleted → point committed. The guest is released as soon as the
    /// snapshot exists (or failed); the snapshot is deleted whatever happens; a point the store
    /// holds but the catalog did not commit is expired, so a failed or cancelled job leaves
    /// nothing visible.
    func run(_ job: JobContext, item: ProtectedItem, type: PointType, retainUntil: Date?) async throws {
        let key = item.vm
        let vm = try await job.step("Check VM") {
            guard let vm = try await fabric.vm(key) else { throw CoffreError.vmNotFoundInFabric(key, fabric: fabric.name) }
            job.note("\(vm.powerState.rawValue), \(vm.disks.count) disks, \(ByteSize.format(vm.disks.reduce(0) { $0 + $1.size }))")
            return vm
        }

        // One decision: the item's latest committed point is what the vault compares with, and
        // where the fabric's changed-block tracking counts from (with its marker for that point).
        let base = try await catalog.points(item: item.id).last
        let since = base.flatMap { point in point.changes?.token.map { ChangeBase(point: point.id, token: $0) } }
        var guest = try await prepareGuest(job, vm: vm, fabric: fabric)
        let snapshot: any FabricSnapshot
        do {
            snapshot = try await job.step("Take snapshot") {
                let snapshot = try await withTimeout(self.configuration.snapshotTimeout, error: {
                    .snapshotTimeout(key, seconds: self.configuration.snapshotTimeout.inSeconds)
                }, discardingLate: { late in
                    // It came after all: it must not outlive the job (a hypervisor snapshot, scratch files).
                    self.logger.warning("the snapshot of job \(job.id) arrived after its timeout; deleting it")
                    do { try await late.delete() } catch { self.logger.error("deleting the late snapshot of job \(job.id) failed: \(error)") }
                }) {
                    try await fabric.makeSnapshot(of: key, id: job.id, since: since)
                }
                // A hypervisor's snapshot or a reflink copies nothing: no "0 B" beside the step.
                job.note(snapshot.cost, bytes: snapshot.bytesCopied > 0 ? snapshot.bytesCopied : nil)
                if let reason = snapshot.resyncReason { job.note("full read: \(reason)") }
                return snapshot
            }
        } catch {
            await releaseGuest(job, &guest)
            throw error
        }
        let takenAt = clock.now()
        await releaseGuest(job, &guest)
        if let refusal = guest.refusal {
            await deleteSnapshot(job, snapshot)
            throw refusal
        }

        let stored: StoredPoint
        do {
            stored = try await transfer(job, key: key, item: item,
                                        request: BackupRequest(item: item.id, disks: snapshot.disks, base: base?.id, time: takenAt))
        } catch {
            await deleteSnapshot(job, snapshot)
            throw error
        }
        await deleteSnapshot(job, snapshot)

        do {
            try job.checkCancelled()
            try await job.step("Commit recovery point") {
                try await self.commit(stored, job: job, itemID: item.id, vm: vm, takenAt: takenAt, type: type,
                                      retainUntil: retainUntil, guest: guest,
                                      changes: Self.changeTracking(snapshot, stored: stored, since: since),
                                      definition: snapshot.definition)
            }
        } catch {
            await expireUncommitted(stored.id, job: job)
            throw error
        }
    }

    /// Expires a point the store holds but the catalog will not: nothing of a failed job stays.
    private func expireUncommitted(_ id: String, job: JobContext) async {
        do {
            try await store.expirePoint(id)
        } catch {
            // `expireOrphans` finds it again on the next tick.
            logger.error("expiring the uncommitted point \(id) of job \(job.id) failed: \(error)")
        }
    }

    private func transfer(_ job: JobContext, key: VMKey, item: ProtectedItem, request: BackupRequest) async throws -> StoredPoint {
        try await job.step("Transfer data") {
            try job.checkCancelled()
            let disks = request.disks
            let total = disks.reduce(0) { $0 + $1.size }
            job.setProgress(JobProgress(totalBytes: total))
            let stored: StoredPoint
            do {
                stored = try await withTimeout(configuration.copyTimeout, error: {
                    .backupCopyTimeout(key, seconds: self.configuration.copyTimeout.inSeconds)
                }, discardingLate: { late in
                    await self.expireUncommitted(late.id, job: job)
                }) {
                    try await self.store.backupPoint(request) { progress in
                        job.setProgress(JobProgress(totalBytes: total, scannedBytes: progress.scannedBytes,
                                                    readBytes: progress.readBytes, writtenBytes: progress.writtenBytes))
                    }
                }
            } catch let error as CoffreError {
                throw error
            } catch where !isCancellation(error) {
                throw CoffreError.backupInternalError(key, detail: Engine.describe(error))
            }
            job.setProgress(JobProgress(totalBytes: total, scannedBytes: total,
                                        readBytes: stored.bytesRead, writtenBytes: stored.bytesWritten))
            job.note("\(disks.count) disks in parallel: read \(ByteSize.format(stored.bytesRead)), stored \(ByteSize.format(stored.bytesWritten)) (\(stored.blocksAdded) new blocks, \(stored.blocksChanged) changed)",
                     bytes: stored.bytesWritten)
            job.setDetail("bytesRead", String(stored.bytesRead))
            job.setDetail("bytesWritten", String(stored.bytesWritten))
            return stored
        }
    }

    private func deleteSnapshot(_ job: JobContext, _ snapshot: any FabricSnapshot) async {
        // Runs on the failure and cancellation paths too: a left-over snapshot costs disk space.
        do {
            try await job.step("Delete snapshot") { try await snapshot.delete() }
        } catch {
            logger.error("deleting the snapshot of job \(job.id) failed: \(error)")
        }
    }

    private func commit(
        _ stored: StoredPoint, job: JobContext, itemID: String, vm: DiscoveredVM, takenAt: Date, type: PointType,
        retainUntil: Date?, guest: GuestSession, changes: ChangeTracking?, definition: String?
    ) async throws {
        guard let item = try await catalog.item(id: itemID) else { throw CoffreError(.notProtected, "The protected item \(itemID) is gone") }
        guard let policy = try await catalog.policy(named: item.policy) else { throw CoffreError.policyNotFound(item.policy) }
        let earlier = try await catalog.points(item: item.id).filter { $0.type == .scheduled }.map(\.takenAt)
        let tags = type == .scheduled
            ? policy.retention.tags(forPointAt: takenAt, earlierPoints: earlier, calendar: policy.schedule.calendar) : []
        var point = RecoveryPointRecord(
            id: stored.id, item: item.id, vm: item.vm, takenAt: takenAt, type: type, consistency: guest.consistency,
            tags: tags.sorted(), expiresAt: nil, retainUntil: retainUntil,
            disks: stored.disks.map { disk in
                VirtualDisk(name: disk.name, size: disk.size,
                            isOSDisk: vm.disks.first(where: { $0.name == disk.name })?.isOSDisk ?? false)
            },
            stats: PointStats(bytesRead: stored.bytesRead, bytesWritten: stored.bytesWritten,
                              blocksAdded: stored.blocksAdded, blocksChanged: stored.blocksChanged, seconds: stored.seconds),
            guest: guest.outcome, job: job.id, changes: changes, definition: definition)
        point.expiresAt = Engine.expiry(of: point, item: item, policy: policy)
        // Only while the job is still this node's: one another took for dead commits nothing.
        try await catalog.commitPoint(point, item: item, job: job.snapshot)
        job.setDetail("point", point.id)
        job.setDetail("consistency", point.consistency.rawValue)
        if let reason = changes?.resyncReason { job.setDetail("resyncReason", reason) }
        job.note("\(point.id), \(point.consistency.rawValue), expires \(point.expiresAt.map(Engine.instant) ?? "never")")
    }

    /// What changed-block tracking did for a point; nil when the fabric tracks no changes. The
    /// reason for a full read is the fabric's (no bitmap, a new disk), else the store's (the
    /// base point could not be used, a disk changed size).
    static func changeTracking(_ snapshot: any FabricSnapshot, stored: StoredPoint, since: ChangeBase?) -> ChangeTracking? {
        guard snapshot.changeToken != nil || since != nil else { return nil }
        var reason = snapshot.resyncReason ?? stored.disks.lazy.compactMap(\.fullReadReason).first
        if since == nil, snapshot.changeToken != nil { reason = nil }  // a first backup is full by nature
        return ChangeTracking(token: snapshot.changeToken, changedOnlyDisks: stored.changedOnlyDisks, resyncReason: reason)
    }

    /// Asks the extension to prepare the guest. The consistency is what actually happened: a
    /// stopped VM or an unreachable agent gives a crash-consistent point (C1); an agent that
    /// says the backup must fail (continueBackupOnFailure=false) fails the job with its error.
    private func prepareGuest(_ job: JobContext, vm: DiscoveredVM, fabric: any Fabric) async throws -> GuestSession {
        var session = GuestSession(consistency: .crashConsistent, outcome: GuestOutcome(reason: ""))
        guard vm.powerState == .running else {
            session.outcome.reason = "the VM is \(vm.powerState.rawValue): nothing to freeze"
            job.skip("Prepare guest", because: session.outcome.reason)
            return session
        }
        guard vm.agentVersion != nil else { throw CoffreError.extensionInstallFailed(vm.key) }
        guard let channel = try await fabric.guestChannel(for: vm.key) else {
            session.outcome.reason = "the Coffre extension is not installed in the VM"
            job.skip("Prepare guest", because: session.outcome.reason)
            return session
        }
        session.channel = channel
        let report: AgentReport
        do {
            report = try await job.step("Prepare guest") {
                try await withTimeout(self.configuration.snapshotTimeout, error: {
                    .snapshotTimeout(vm.key, seconds: self.configuration.snapshotTimeout.inSeconds)
                }) {
                    try await channel.prepare(job: job.id, diskCount: vm.disks.count)
                }
            }
        } catch let error where !isCancellation(error) {
            session.outcome.reason = "the guest agent could not be reached: \(Engine.describe(error))"
            job.note(session.outcome.reason)
            // It may have frozen before failing to answer; its watchdog thaws anyway, release sooner.
            _ = try? await channel.release(job: job.id)
            return session
        }
        session.outcome.scripts = report.scripts
        session.outcome.errors = report.errors
        session.outcome.frozenFileSystems = report.frozenFileSystems
        guard report.ok else {
            if report.frozen { _ = try? await channel.release(job: job.id) }
            throw report.errors.first?.error ?? CoffreError(.guestPrepareFailed, "The extension refused to prepare the guest")
        }
        session.prepared = true
        session.consistency = report.consistency ?? (report.frozen ? .fileSystemConsistent : .crashConsistent)
        job.note(report.frozen ? "frozen: \(report.frozenFileSystems.joined(separator: ", "))" : "not frozen")
        return session
    }

    /// Thaw and post-script, right after the snapshot. Never throws: a failed release
    /// lowers the consistency and the guest's watchdog thaws by itself (B1).
    private func releaseGuest(_ job: JobContext, _ session: inout GuestSession) async {
        guard session.prepared, let channel = session.channel else {
            if session.outcome.reason.isEmpty { session.outcome.reason = "no guest preparation" }
            return
        }
        session.prepared = false
        do {
            let report = try await job.step("Release guest") { try await channel.release(job: job.id) }
            session.outcome.scripts += report.scripts
            session.outcome.errors += report.errors
            session.outcome.freezeDurationMilliseconds = report.freezeDurationMilliseconds
            session.consistency = report.consistency ?? session.consistency
            if !report.ok {
                session.refusal = report.errors.first?.error ?? CoffreError(.guestReleaseFailed, "The extension says the backup must fail")
            }
            if let ms = report.freezeDurationMilliseconds { job.note("thawed after \(ms) ms") }
        } catch {
            session.consistency = max(session.consistency, .fileSystemConsistent)
            session.outcome.errors.append(ErrorInfo(code: .guestReleaseFailed,
                message: "Releasing the guest failed: \(Engine.describe(error)); its watchdog thaws it"))
        }
        session.outcome.reason = Self.reason(for: session)
    }

    private static func reason(for session: GuestSession) -> String {
        switch session.consistency {
        case .applicationConsistent: "pre- and post-script succeeded around a frozen snapshot"
        case .fileSystemConsistent:
            session.outcome.errors.isEmpty ? "file systems frozen, no scripts configured"
                : "file systems frozen; \(session.outcome.errors.map(\.code.rawValue).joined(separator: ", "))"
        case .crashConsistent:
            session.outcome.errors.isEmpty ? "file systems not frozen"
                : "not frozen; \(session.outcome.errors.map(\.code.rawValue).joined(separator: ", "))"
        }
    }
}

/// What the guest did during one backup, gathered for the point (C1, C2).
struct GuestSession: Sendable {
    var channel: (any GuestChannel)?
    var consistency: Consistency
    var outcome: GuestOutcome
    /// Whether `prepare` succeeded and `release` is owed.
    var prepared = false
    /// The agent's `release` said the backup must fail (a post-script failed with
    /// continueBackupOnFailure=false on a multi-disk VM).
    var refusal: CoffreError?
}
