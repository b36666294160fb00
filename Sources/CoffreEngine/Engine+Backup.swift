public import CoffreCore
public import Foundation

extension Engine {
    /// Queues an on-demand backup ("backup now", B5) and starts it here at once when this node
    /// has a free place: full if the VM has no point yet, incremental otherwise, kept until
    /// `retainUntil` (default `onDemandRetentionDays`; to the second).
    /// - Returns: the job as recorded once this engine tried to claim it (InProgress or Queued).
    public func backupNow(_ name: String, retainUntil: Date? = nil) async throws -> Job {
        let record = try await resolveVM(name)
        let key = record.key
        _ = try await backupableItem(key)
        let now = clock.now()
        let until = retainUntil ?? Calendar(identifier: .gregorian).date(
            byAdding: .day, value: configuration.onDemandRetentionDays, to: now)!
        guard until > now else { throw CoffreError.invalidRetainUntil(Self.instant(until)) }
        let job = try await runner.enqueue(.backup, vm: key, lock: Self.itemLock(key), details: [
            "trigger": "on-demand", "retainUntil": Self.instant(until), "fabric": record.fabric,
        ])
        await runner.claim(jobID: job.id)
        if let local = runner.snapshot(of: job.id) { return local }
        return try await catalog.job(id: job.id) ?? job
    }

    /// Queues the Backup job of a schedule slot.
    func enqueueScheduledBackup(_ item: ProtectedItem, slot: Date) async throws -> Job {
        let fabric = try await catalog.vm(item.vm)?.fabric
        return try await runner.enqueue(.backup, vm: item.vm, lock: Self.itemLock(item.vm), details: [
            "trigger": "scheduled", "slot": Self.instant(slot), "fabric": fabric ?? "",
        ])
    }

    /// Runs a claimed backup job as its record describes it. The item is checked again: its
    /// protection may have stopped while the job waited.
    func runQueuedBackup(_ job: JobContext) async throws {
        let record = job.snapshot
        guard let key = record.vm else { throw CoffreError(.internalError, "Backup job \(record.id) names no VM", workaround: "Report it with the job's id") }
        let item = try await backupableItem(key)
        guard let vm = try await catalog.vm(key) else { throw CoffreError.vmNotFound(key.description) }
        let pipeline = BackupPipeline(catalog: catalog, store: store, clock: clock, configuration: configuration,
                                      fabric: try fabric(named: vm.fabric), logger: logger)
        if record.details["trigger"] == "on-demand" {
            let until = record.details["retainUntil"].flatMap(Self.parseInstant)
            try await pipeline.run(job, item: item, type: .onDemand, retainUntil: until)
        } else {
            try await pipeline.run(job, item: item, type: .scheduled, retainUntil: nil)
        }
    }

    private func backupableItem(_ key: VMKey) async throws -> ProtectedItem {
        guard let item = try await catalog.item(for: key) else { throw CoffreError.notProtected(key) }
        switch item.state {
        case .protected, .configuring: return item
        case .stopped: throw CoffreError.protectionStopped(key)
        case .softDeleted: throw CoffreError.itemSoftDeleted(key, purgeAfter: Self.day(item.purgeAfter))
        }
    }
}
