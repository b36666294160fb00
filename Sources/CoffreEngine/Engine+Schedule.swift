public import CoffreCore
import Foundation
public import ServiceLifecycle

extension Engine {
    /// Queues the Backup jobs that are due at `now` (P5): for each protected item, the latest
    /// slot of its policy's schedule at or before `now`, if no job was made for it yet. Slots
    /// missed while the vault was down collapse into that one job. An item busy with another
    /// operation is retried at the next tick. The nodes' runners claim them (`tick()` runs this
    /// engine's at once).
    /// - Returns: the jobs queued.
    @discardableResult
    public func runDueBackups() async throws -> [Job] {
        let due = Scheduler.dueBackups(items: try await catalog.items(), policies: try await catalog.policies(), at: clock.now())
        var queued: [Job] = []
        for var due in due {
            // The lease may lapse during a long pass: a node that no longer leads queues nothing.
            guard await mayLead() else { break }
            do {
                // A leader that died between queuing a slot's backup and recording the slot
                // left the job: the slot is recorded, not queued twice.
                if try await !slotQueued(.backup, of: due) {
                    queued.append(try await enqueueScheduledBackup(due.item, slot: due.slot))
                }
                due.item.lastScheduledSlot = due.slot
                try await catalog.saveItem(due.item)
            } catch let error as CoffreError where error.code == .anotherOperationInProgress {
                logger.info("scheduled backup of \(due.item.vm) waits: \(error.message)")
            }
        }
        return queued
    }

    /// Whether a job of `type` for the due slot was queued already (it was queued at the slot or later).
    func slotQueued(_ type: JobType, of due: Scheduler.Due) async throws -> Bool {
        let slot = Self.instant(due.slot)
        return try await catalog.jobs(JobFilter(type: type, vm: due.item.vm, since: due.slot))
            .contains { $0.details["trigger"] == "scheduled" && $0.details["slot"] == slot }
    }

    /// Expires what retention says is over (K3–K5) and frees unreferenced blocks.
    ///
    /// - Protected items: points whose expiry passed go — except the item's newest point, which
    ///   never expires while it is the last one (a VM deleted from its fabric keeps it, K5).
    /// - Stopped items keep everything; soft-deleted items keep everything, expired or not,
    ///   until `purgeAfter`, when all their data is purged (DeleteBackupData job).
    /// - Returns: the ids of the points removed.
    @discardableResult
    public func runRetention() async throws -> [String] {
        let now = clock.now()
        var removed: [String] = []
        for item in try await catalog.items() {
            switch item.state {
            case .protected, .configuring:
                let points = try await catalog.points(item: item.id)
                let newest = points.max { ($0.takenAt, $0.id) < ($1.takenAt, $1.id) }?.id
                let expired = points.filter { $0.id != newest && ($0.expiresAt.map { $0 <= now } ?? false) }
                guard !expired.isEmpty else { continue }
                try await catalog.deletePoints(ids: expired.map(\.id))
                for point in expired { try await store.expirePoint(point.id) }
                removed += expired.map(\.id)
                logger.info("retention expired \(expired.count) points of \(item.vm)")
            case .softDeleted:
                guard let purgeAfter = item.purgeAfter, purgeAfter <= now else { continue }
                removed += try await purge(item)
            case .stopped:
                continue
            }
        }
        if !removed.isEmpty {
            _ = try await store.collectGarbage()
            await catalogChanged()
            await vaultChanged()
        }
        return removed
    }

    /// Deletes a soft-deleted item's data for good, as a DeleteBackupData job.
    private func purge(_ item: ProtectedItem) async throws -> [String] {
        let points = try await catalog.points(item: item.id)
        let job = try await runner.launch(.deleteBackupData, vm: item.vm, lock: Self.itemLock(item.vm),
                                   details: ["trigger": "soft-delete period over"]) { job in
            try await job.step("Purge backup data") {
                // Store first: a crash in between leaves catalog rows the next pass purges again,
                // never store data no catalog row leads to.
                for point in try await self.store.storedPoints(item: item.id) { try await self.store.expirePoint(point.id) }
                try await self.catalog.deleteItem(id: item.id)
                job.note("\(points.count) points purged after the soft-delete period")
            }
        }
        let finished = try await wait(for: job.id)
        if let error = finished.error { throw error }
        return points.map(\.id)
    }

    /// Points whose store data exists but the catalog never committed, of items with no
    /// running backup, are expired too: a crash between the two is cleaned up here.
    /// The store is listed once, before anything else is read (decision 0025).
    public func expireOrphans() async throws {
        let stored = try await store.storedPoints(item: nil)
        try await expireUncommitted(stored, of: try await catalog.items())
    }
}

extension Engine: Service {
    /// The long-lived loop (`coffre serve`, `coffre scheduler`): starts due backups and runs
    /// retention every `tickInterval` until graceful shutdown, then cancels running jobs
    /// (they end as Cancelled, leaving nothing visible).
    public func run() async throws {
        try await start()
        // With other nodes: heartbeats and the leader lease, on their own beat (a long tick
        // must not let the lease lapse).
        let heartbeats = coordinator.map { _ in
            Task {
                while !Task.isCancelled {
                    await self.beatAndRecover()
                    try? await Task.sleep(for: self.configuration.heartbeatInterval)
                }
            }
        }
        if heartbeats != nil { await membership.beat() }
        // The job runner: claims queued work whatever node queued it.
        runner.becomeQueueRunner()
        let claiming = Task {
            while !Task.isCancelled {
                await self.runner.claimQueued()
                try? await Task.sleep(for: self.configuration.claimInterval)
            }
        }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await tick()
            let interval = configuration.tickInterval
            _ = try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
        claiming.cancel()
        heartbeats?.cancel()
        await resign()
        await cancelAllAndWait(stopClaiming: true)
    }

    /// One pass of the leader's work, as the scheduler lists it (`Scheduler.tick`): recovery of
    /// interrupted jobs, due backups and verifications queued and claimed, retention, and now
    /// and then the sweep for uncommitted points. A node that does not lead does none of it;
    /// errors are logged, never fatal.
    public func tick() async {
        let leading = await mayLead(fenced: true)
        for duty in scheduler.withLock({ $0.tick(leading: leading) }) {
            await perform(duty)
        }
    }

    private func perform(_ duty: Scheduler.Duty) async {
        do {
            switch duty {
            case .recoverInterrupted: try await recoverInterruptedJobs()
            case .queueDueBackups: try await runDueBackups()
            case .claimQueued: await runner.claimQueued()
            case .queueDueVerifications: try await queueDueVerifications()
            case .applyRetention: try await runRetention()
            case .sweepUncommitted: try await expireOrphans()
            case .copyCatalog: try await copyCatalogIfStale()
            case .sampleVault: await sampleVaultIfOlder(than: 3600)
            }
        } catch {
            logger.error("\(duty): \(error)")
        }
    }
}
