/// Everything a catalog holds, read through the `Catalog` calls: what `coffre catalog migrate`
/// copies from one catalog into another and compares afterwards.
public struct CatalogSnapshot: Sendable, Equatable {
    public var fabrics: [FabricRecord] = []
    public var vms: [VMRecord] = []
    public var policies: [Policy] = []
    public var items: [ProtectedItem] = []
    /// Every item's points, oldest first per item.
    public var points: [RecoveryPointRecord] = []
    /// Newest first.
    public var jobs: [Job] = []
    /// Oldest first.
    public var tokens: [APIToken] = []

    public init() {}

    /// How many records of each kind, in the order they are copied.
    public var counts: [(kind: String, count: Int)] {
        [("fabrics", fabrics.count), ("VMs", vms.count), ("policies", policies.count),
         ("protected items", items.count), ("recovery points", points.count), ("jobs", jobs.count),
         ("API tokens", tokens.count)]
    }

    public var isEmpty: Bool { counts.allSatisfy { $0.count == 0 } }

    /// The kinds of record whose lists differ between `self` and `other`.
    public func differences(from other: CatalogSnapshot) -> [String] {
        let same = [fabrics == other.fabrics, vms == other.vms, policies == other.policies, items == other.items,
                    points == other.points, jobs == other.jobs, tokens == other.tokens]
        return zip(counts, zip(other.counts, same)).compactMap { mine, theirs in
            theirs.1 ? nil : "\(mine.kind) (\(mine.count) → \(theirs.0.count))"
        }
    }
}

extension Catalog {
    /// Reads every record. Consistent when nothing writes meanwhile (the migration refuses to
    /// run while a job is in progress).
    public func snapshot() async throws -> CatalogSnapshot {
        var snapshot = CatalogSnapshot()
        snapshot.fabrics = try await fabrics()
        snapshot.vms = try await vms()
        snapshot.policies = try await policies()
        snapshot.items = try await items()
        for item in snapshot.items { snapshot.points += try await points(item: item.id) }
        snapshot.jobs = try await jobs(JobFilter())
        snapshot.tokens = try await tokens()
        return snapshot
    }
}

/// A catalog that can be filled at once from a snapshot of another (the target of
/// `coffre catalog migrate`).
public protocol CatalogImporting: Catalog {
    /// Writes every record of `snapshot`, all or nothing.
    /// - Throws: `CatalogNotEmpty` when the catalog holds any record already; nothing is written.
    func importSnapshot(_ snapshot: CatalogSnapshot) async throws
}

extension CoffreError {
    /// A migration's target already holds records.
    public static func catalogNotEmpty(_ location: String, counts: [(kind: String, count: Int)]) -> CoffreError {
        let held = counts.filter { $0.count > 0 }.map { "\($0.count) \($0.kind)" }.joined(separator: ", ")
        return CoffreError(.catalogNotEmpty, "The catalog \(location) is not empty (it holds \(held)); nothing was copied",
                           workaround: "Migrate into a new, empty database (CREATE DATABASE …), or drop and create this one again if what it holds is not needed")
    }
}
