public import Foundation

/// A copy of the whole catalog kept in the vault (`catalog/<name>`, sealed like a manifest:
/// compressed, and encrypted in an encrypted vault), so that the vault and its key are a
/// complete disaster-recovery kit: `coffre catalog restore --from-vault` brings it back.
/// Decision 0030.
public struct CatalogCopy: Codable, Sendable, Equatable {
    public static let format = "coffre-catalog-copy"
    public var format = CatalogCopy.format
    public var version = 1
    public var takenAt: Date
    /// The node (or process) that took it.
    public var takenBy: String
    public var coffreVersion: String
    public var snapshot: CatalogSnapshot

    public init(takenAt: Date, takenBy: String, coffreVersion: String, snapshot: CatalogSnapshot) {
        self.takenAt = takenAt
        self.takenBy = takenBy
        self.coffreVersion = coffreVersion
        self.snapshot = snapshot
    }

    /// JSON; dates keep every digit, so a copy read back equals the snapshot it was made of.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(self))
    }

    /// - Throws: `CatalogUnreadable` naming the copy when the bytes are not a copy this
    ///   version reads.
    public static func decode(_ bytes: [UInt8], name: String) throws -> CatalogCopy {
        struct Header: Decodable { var format: String?; var version: Int? }
        let header = try? JSONDecoder().decode(Header.self, from: Data(bytes))
        guard header?.format == format else {
            throw CoffreError.catalogUnreadable("catalog copy \(name)", reason: "it is not a catalog copy")
        }
        guard header?.version == 1 else {
            throw CoffreError.vaultFormatUnsupported("catalog copy \(name) of version \(header?.version ?? 0), written by a newer Coffre")
        }
        do {
            return try JSONDecoder().decode(CatalogCopy.self, from: Data(bytes))
        } catch {
            throw CoffreError.catalogUnreadable("catalog copy \(name)", reason: "its records do not decode (\(error))")
        }
    }
}

/// A catalog copy as the point store lists it.
public struct StoredCatalogCopy: Codable, Sendable, Equatable {
    /// `<compact UTC time>.<milliseconds>-<random>`: sorting by name sorts by time.
    public var name: String
    public var takenAt: Date
    /// Stored (sealed) bytes.
    public var size: Int64

    public init(name: String, takenAt: Date, size: Int64) {
        self.name = name
        self.takenAt = takenAt
        self.size = size
    }

    /// A new name for a copy taken at `date`: `20261122T101530.123-3f9a1c2b` (UTC, milliseconds).
    public static func makeName(at date: Date) -> String {
        let milliseconds = Int((date.timeIntervalSince1970 * 1000).rounded(.down)) % 1000
        return compactTimestamp(date) + "." + String((milliseconds + 1000) % 1000).leftPadded(to: 3) + "-"
            + String(UInt32.random(in: 0...UInt32.max), radix: 16).leftPadded(to: 8)
    }

    /// The time a name carries (to the millisecond); nil when it is not a copy's name.
    public static func time(ofName name: String) -> Date? {
        let parts = name.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[1].count == 8, parts[1].allSatisfy(\.isHexDigit) else { return nil }
        let time = parts[0].split(separator: ".", omittingEmptySubsequences: false)
        guard time.count == 2, time[1].count == 3, let milliseconds = Int(time[1]),
              let seconds = parseCompactTimestamp(String(time[0])) else { return nil }
        return seconds.addingTimeInterval(Double(milliseconds) / 1000)
    }

    /// Which copies to keep: the newest `recent`, and the newest of each UTC day among the
    /// last `days` days that have one. The rest may be deleted. Never empty when `copies` is not.
    public static func kept(_ copies: [StoredCatalogCopy], recent: Int = 10, days: Int = 14) -> Set<String> {
        let newestFirst = copies.sorted { $0.name > $1.name }
        var keep = Set(newestFirst.prefix(max(1, recent)).map(\.name))
        var seenDays: [String] = []
        for copy in newestFirst {
            let day = String(copy.name.prefix(8))
            guard !seenDays.contains(day) else { continue }
            guard seenDays.count < days else { break }
            seenDays.append(day)
            keep.insert(copy.name)
        }
        return keep
    }
}

/// `20261122T101530` (UTC) back to a date.
public func parseCompactTimestamp(_ text: String) -> Date? {
    let chars = Array(text)
    guard chars.count == 15, chars[8] == "T" else { return nil }
    func number(_ range: Range<Int>) -> Int? { Int(String(chars[range])) }
    guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8),
          let hour = number(9..<11), let minute = number(11..<13), let second = number(13..<15) else { return nil }
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    return calendar.date(from: DateComponents(year: year, month: month, day: day, hour: hour, minute: minute, second: second))
}

/// What `coffre catalog restore --from-vault` writes: a copy made to agree with the vault as it
/// is now. The vault is the truth for which points exist (decision 0030):
/// - a point the copy lists whose manifest is gone was expired after the copy: it is dropped;
/// - a point the vault holds of an item the copy knows, but the copy does not list, was
///   committed after the copy: it is **adopted**, so that the sweep for uncommitted points
///   (decision 0025), which expires what the catalog does not list, never takes it;
/// - a point of an item the copy does not know stays in the vault untouched and is reported:
///   the sweep only looks at the catalog's items, so nothing removes it;
/// - a job the copy shows queued or running cannot be running any more: it ends as failed.
public struct CatalogRestorePlan: Sendable, Equatable {
    public var snapshot: CatalogSnapshot
    public var dropped: [RecoveryPointRecord] = []
    public var adopted: [RecoveryPointRecord] = []
    /// Item id → the ids of its points in the vault, for items the copy does not know.
    public var unknownItems: [String: [String]] = [:]
    public var endedJobs: [String] = []

    public init(copy: CatalogCopy, stored: [StoredPoint], at now: Date) {
        snapshot = copy.snapshot
        let inVault = Set(stored.map(\.id))
        let listed = Set(snapshot.points.map(\.id))
        dropped = snapshot.points.filter { !inVault.contains($0.id) }
        snapshot.points.removeAll { !inVault.contains($0.id) }

        let items = Dictionary(snapshot.items.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let vms = Dictionary(snapshot.vms.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        for point in stored where !listed.contains(point.id) {
            guard let item = items[point.item] else {
                unknownItems[point.item, default: []].append(point.id)
                continue
            }
            adopted.append(Self.adopt(point, item: item, vm: vms[item.vm], copyTakenAt: copy.takenAt))
        }
        snapshot.points += adopted
        snapshot.orderPointsByItem()

        for index in snapshot.jobs.indices where !snapshot.jobs[index].status.isFinished {
            var job = snapshot.jobs[index]
            let was = job.status == .queued ? "queued" : "running"
            job.status = .failed
            job.endedAt = now
            job.error = ErrorInfo(code: .jobInterrupted,
                                  message: "Job \(job.id) was \(was) when the catalog copy of \(copy.takenAt) was taken, and the catalog was restored from that copy: how it ended is not known",
                                  workaround: "Points it may have made are listed (adopted from the vault); run the operation again if it is missing")
            for step in job.steps.indices where job.steps[step].status == .inProgress {
                job.steps[step].status = .failed
                job.steps[step].endedAt = now
            }
            job.cancelRequested = false
            snapshot.jobs[index] = job
            endedJobs.append(job.id)
        }
    }

    /// The record of a point the copy does not list. What only the catalog knew (how the guest
    /// was prepared, schedule or on demand, retention) is unknown: the point is kept until
    /// someone deletes it, labelled crash-consistent, which promises nothing it may not hold.
    static func adopt(_ point: StoredPoint, item: ProtectedItem, vm: VMRecord?, copyTakenAt: Date) -> RecoveryPointRecord {
        let disks = point.disks.enumerated().map { index, disk in
            VirtualDisk(name: disk.name, size: disk.size,
                        isOSDisk: vm?.vm.disks.first { $0.name == disk.name }?.isOSDisk ?? (index == 0))
        }
        let reason = "Adopted from the vault when the catalog was restored from a copy taken before this point (\(copyTakenAt)): "
            + "how the guest was prepared is not known, so it counts as crash-consistent, and it is kept until deleted"
        return RecoveryPointRecord(
            id: point.id, item: item.id, vm: item.vm, takenAt: point.time, type: .onDemand, consistency: .crashConsistent,
            expiresAt: nil, disks: disks,
            stats: PointStats(bytesRead: point.bytesRead, bytesWritten: point.bytesWritten, blocksAdded: point.blocksAdded,
                              blocksChanged: point.blocksChanged, seconds: point.seconds),
            guest: GuestOutcome(reason: reason), job: "")
    }
}
