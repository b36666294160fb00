/// Everything a catalog holds: what `coffre catalog migrate` copies from one catalog into
/// another and compares afterwards, and what a catalog copy in the vault holds (`CatalogCopy`).
public struct CatalogSnapshot: Codable, Sendable, Equatable {
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

    /// Puts `points` in the catalogs' order: item by item in the order of `items`, each item's
    /// oldest first (as `points(item:)` lists them); points of an unknown item last.
    public mutating func orderPointsByItem() {
        let order = Dictionary(items.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
        points.sort { (order[$0.item] ?? .max, $0.takenAt, $0.id) < (order[$1.item] ?? .max, $1.takenAt, $1.id) }
    }

    private enum CodingKeys: String, CodingKey {
        case fabrics, vms, policies, items, points, jobs, tokens, definitions
    }

    // A point's VM definition is not part of its encoded record (it has no place in listings),
    // but a snapshot must carry it: restores of a point need it. It travels beside, by point id.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        fabrics = try container.decode([FabricRecord].self, forKey: .fabrics)
        vms = try container.decode([VMRecord].self, forKey: .vms)
        policies = try container.decode([Policy].self, forKey: .policies)
        items = try container.decode([ProtectedItem].self, forKey: .items)
        points = try container.decode([RecoveryPointRecord].self, forKey: .points)
        jobs = try container.decode([Job].self, forKey: .jobs)
        tokens = try container.decode([APIToken].self, forKey: .tokens)
        let definitions = try container.decodeIfPresent([String: String].self, forKey: .definitions) ?? [:]
        for index in points.indices { points[index].definition = definitions[points[index].id] }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(fabrics, forKey: .fabrics)
        try container.encode(vms, forKey: .vms)
        try container.encode(policies, forKey: .policies)
        try container.encode(items, forKey: .items)
        try container.encode(points, forKey: .points)
        try container.encode(jobs, forKey: .jobs)
        try container.encode(tokens, forKey: .tokens)
        var definitions: [String: String] = [:]
        for point in points { definitions[point.id] = point.definition }
        try container.encode(definitions, forKey: .definitions)
    }

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
    /// Reads every record, one call after another: consistent only when nothing writes
    /// meanwhile. The SQLite and PostgreSQL catalogs read in one transaction instead.
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

extension CoffreError {
    /// No catalog copy by that name in the vault (or none at all).
    public static func catalogCopyNotFound(_ name: String?, vault: String) -> CoffreError {
        CoffreError(.catalogCopyNotFound,
                    name.map { "The vault \(vault) holds no catalog copy \($0)" } ?? "The vault \(vault) holds no catalog copy",
                    workaround: name == nil
                        ? "Copies are written after every job from this version on: run a job or coffre catalog save, then try again"
                        : "List the copies with coffre catalog copies and pass one of their names")
    }
}
