public import CoffreCore
public import Foundation

/// Records with every field set, and dates with fractions of a second, so that a round trip
/// that loses anything shows.
public enum CatalogSample {
    /// Its seconds since 1970 do not convert back to the same `Date`.
    public static let t0 = Date(timeIntervalSinceReferenceDate: 815_000_000.987_654_3)

    public static func at(_ seconds: Double) -> Date { t0.addingTimeInterval(seconds) }

    public static func vm(_ name: String, in cloudService: String = "cs1", power: PowerState = .running,
                   diskSize: Int64 = 10 << 30) -> DiscoveredVM {
        DiscoveredVM(
            name: name, cloudService: cloudService, region: "eu-west", osType: "linux", powerState: power,
            agentVersion: "2.1.0", extensionVersion: nil,
            disks: [VirtualDisk(name: "os.raw", size: diskSize, isOSDisk: true),
                    VirtualDisk(name: "data-1.raw", size: 1 << 30, isOSDisk: false)],
            unsupportedFeatures: ["shared disk data-2.raw"])
    }

    public static func key(_ name: String, in cloudService: String = "cs1") -> VMKey {
        VMKey(cloudService: cloudService, name: name)
    }

    public static func policy(_ name: String, days: Int = 30) -> Policy {
        Policy(name: name,
               schedule: .weekly(on: [.saturday, .monday], at: TimeOfDay(hour: 22, minute: 5), timeZone: "Europe/Paris"),
               retention: Retention(days: days, weeks: 12, months: nil, years: 3))
    }

    public static func item(_ id: String, vm: VMKey, policy: String = "gold", state: ProtectionState = .protected) -> ProtectedItem {
        ProtectedItem(id: id, vm: vm, policy: policy, state: state, protectedAt: at(0.25),
                      lastScheduledSlot: at(3600.5), softDeletedAt: nil, purgeAfter: nil)
    }

    public static func job(_ id: String, type: JobType = .backup, vm: VMKey? = key("web"), startedAt: Date = t0,
                    status: JobStatus = .inProgress) -> Job {
        Job(id: id, type: type, status: status, vm: vm, startedAt: startedAt,
            steps: [JobStep(name: "Take snapshot", status: .succeeded, startedAt: startedAt,
                            endedAt: startedAt.addingTimeInterval(1.375), bytes: 4096, detail: "reflink")],
            progress: JobProgress(totalBytes: 1 << 33, scannedBytes: 1 << 20, readBytes: 1 << 19, writtenBytes: 12345),
            owner: "host-1:4242", details: ["trigger": "schedule", "policy": "gold"])
    }

    public static func point(_ id: String, of item: ProtectedItem, takenAt: Date) -> RecoveryPointRecord {
        RecoveryPointRecord(
            id: id, item: item.id, vm: item.vm, takenAt: takenAt, type: .scheduled, consistency: .fileSystemConsistent,
            tags: [.weekly, .yearly], expiresAt: takenAt.addingTimeInterval(30 * 86400.125), retainUntil: nil,
            disks: vm(item.vm.name, in: item.vm.cloudService).disks,
            stats: PointStats(bytesRead: 1 << 30, bytesWritten: 123_456_789, blocksAdded: 17, blocksChanged: 3, seconds: 12.345),
            guest: GuestOutcome(
                reason: "pre-script failed; continueBackupOnFailure", freezeDurationMilliseconds: 840,
                frozenFileSystems: ["/", "/var"],
                scripts: [ScriptRun(phase: .pre, path: "/etc/coffre/pre.sh", succeeded: false, attempts: [
                    .init(exitCode: 3, timedOut: false, seconds: 0.25, outputTail: "disk busy"),
                    .init(exitCode: nil, timedOut: true, seconds: 30, outputTail: ""),
                ])],
                errors: [ErrorInfo(code: CoffreError.Code(rawValue: "PreScriptFailed"), message: "exit 3", workaround: nil)]),
            job: "job-\(id)",
            changes: ChangeTracking(token: "coffre-\(id)", changedOnlyDisks: 1, resyncReason: "checkpoint missing"),
            definition: "<domain type='qemu'><name>\(item.vm.name)</name></domain>")
    }
}
