public import CoffreCore
import Foundation

// Copies of the catalog in the vault (issue 18, decision 0030): written after every job that
// changes what the catalog holds, after retention and policy changes, and at least every
// `catalogCopyInterval` by the leader; kept by `StoredCatalogCopy.kept`.

extension Engine {
    /// Reads the catalog in one consistent view and writes it into the vault as a new copy, then
    /// deletes the older copies retention no longer keeps (never the one just written).
    @discardableResult
    public func saveCatalogCopy() async throws -> StoredCatalogCopy {
        // Names sort by time to the millisecond; this engine's copies sort in the order it wrote them.
        let now = lastCatalogCopy.withLock { last in
            var now = clock.now()
            if let previous = last, now < previous.addingTimeInterval(0.001) { now = previous.addingTimeInterval(0.001) }
            last = now
            return now
        }
        var snapshot = try await catalog.snapshot()
        // Job history is the one part that grows without bound: a copy keeps the jobs of the
        // last `catalogCopyJobDays`, those still running, and those that made a point it lists.
        let since = now.addingTimeInterval(-Double(configuration.catalogCopyJobDays) * 86_400)
        let pointJobs = Set(snapshot.points.map(\.job))
        snapshot.jobs.removeAll { $0.status.isFinished && $0.startedAt < since && !pointJobs.contains($0.id) }
        let copy = CatalogCopy(takenAt: now, takenBy: owner, coffreVersion: configuration.version, snapshot: snapshot)
        let bytes = try copy.encoded()
        let name = StoredCatalogCopy.makeName(at: now)
        try await store.saveCatalogCopy(bytes, name: name)
        let copies = try await store.catalogCopies()
        let kept = StoredCatalogCopy.kept(copies).union([name])
        let old = copies.map(\.name).filter { !kept.contains($0) }
        if !old.isEmpty { try await store.deleteCatalogCopies(old) }
        return copies.first { $0.name == name } ?? StoredCatalogCopy(name: name, takenAt: now, size: Int64(bytes.count))
    }

    /// The catalog changed: returns once a copy read after this call is in the vault, or
    /// writing it failed (logged; the change itself stands). Calls made while a copy is being
    /// written share the next one.
    func catalogChanged() async {
        guard configuration.catalogCopyInterval != nil else { return }
        await catalogCopier.copy { [weak self] in
            guard let self else { return }
            do {
                let copy = try await self.saveCatalogCopy()
                self.logger.debug("catalog copy \(copy.name) written (\(copy.size) bytes)")
            } catch {
                self.logger.warning("the catalog copy in the vault could not be written: \(error)")
            }
        }
    }

    /// The leader's schedule: a copy when none was written for `catalogCopyInterval`.
    func copyCatalogIfStale() async throws {
        guard let interval = configuration.catalogCopyInterval else { return }
        var last = lastCatalogCopy.withLock { $0 }
        if last == nil {
            last = try await store.catalogCopies().last?.takenAt
            lastCatalogCopy.withLock { $0 = last }
        }
        if let last, clock.now().timeIntervalSince(last) < interval.inSeconds { return }
        await catalogChanged()
    }
}

/// Writes catalog copies one at a time. A request made while a copy is being written waits for
/// the next one (the running one may have read the catalog before the change), and every
/// request waiting then shares that next one: a burst of job ends writes two copies, not one each.
actor CatalogCopier {
    private var requested = 0
    private var written = 0
    private var writing: Task<Void, Never>?

    func copy(_ write: @escaping @Sendable () async -> Void) async {
        requested += 1
        let mine = requested
        while written < mine {
            if writing == nil {
                let upTo = requested
                writing = Task {
                    await write()
                    self.finished(upTo)
                }
            }
            await writing?.value
        }
    }

    private func finished(_ upTo: Int) {
        written = max(written, upTo)
        writing = nil
    }
}
