import CoffreCore
import CoffreTesting
import Foundation
import Synchronization

/// The local fabric with faults a test can switch on, a fake guest per VM, and a log of
/// what the engine asked for, in order.
final class TestFabric: Fabric {
    let inner: any Fabric
    let root: String

    struct State {
        var guests: [VMKey: FakeGuestChannel] = [:]
        var unreachable = false
        var installDelay: Duration?
        var snapshotDelay: Duration?
        /// The snapshot ignores cancellation and is taken this long after it was asked for
        /// (a hypervisor that finishes a backup job whatever its caller does).
        var lateSnapshot: Duration?
        /// While true, disk reads of snapshots wait (a backup stays "in progress").
        var holdReads = false
        /// Every disk read throws this (not a CoffreError: an unexpected failure).
        var failReads = false
        /// Sleep per read, to make overlap between disks observable.
        var readDelay: Duration?
        /// Reads wait (up to 10 s) until this many disks are being read at once: proves
        /// parallelism without depending on how fast threads start on a busy machine.
        var awaitConcurrentDisks: Int?
        var discoverGate = false
        var events: [String] = []
        var activeDisks: [String: Int] = [:]
        var maxConcurrentDisks = 0
        var liveSnapshots = Set<String>()
        /// Changed-block tracking as a hypervisor's dirty bitmaps would give it: the writes a
        /// test reports per disk since the last snapshot, and the checkpoints that exist.
        var tracking = false
        var writes: [String: [Range<Int64>]] = [:]
        var checkpoints = Set<String>()
        var sinceSeen: [ChangeBase?] = []
        /// How often the engine read the fabric's region: once per `Engine.start()`, which records it.
        var regionReads = 0
        /// Instant restores: whether the fabric runs points; the copy waits while `holdCopy`;
        /// `failCopy` makes it fail as a copy whose point cannot be read.
        var runsPoints = false
        var holdCopy = false
        var failCopy = false
    }

    let state = Mutex(State())

    init(_ inner: any Fabric, root: String) {
        self.inner = inner
        self.root = root
    }

    var name: String { inner.name }
    var region: String {
        self.set { $0.regionReads += 1 }
        return inner.region
    }

    func guest(_ key: VMKey) -> FakeGuestChannel {
        state.withLock { s in
            if let guest = s.guests[key] { return guest }
            let guest = FakeGuestChannel()
            s.guests[key] = guest
            return guest
        }
    }

    func log(_ event: String) { state.withLock { $0.events.append(event) } }
    var events: [String] { state.withLock { $0.events } }
    func set(_ change: (inout State) -> Void) { state.withLock { change(&$0) } }
    func get<T>(_ read: (State) -> T) -> T { state.withLock { read($0) } }

    func discover() async throws -> [DiscoveredVM] {
        log("discover")
        while get(\.discoverGate) { try await Task.sleep(for: .milliseconds(5)) }
        if get(\.unreachable) {
            throw CoffreError(.fabricUnreachable, "Cannot read \(root): connection refused")
        }
        return try await inner.discover()
    }

    func vm(_ key: VMKey) async throws -> DiscoveredVM? { try await inner.vm(key) }

    func installExtension(on key: VMKey) async throws -> String {
        log("install \(key)")
        if let delay = get(\.installDelay) { try await Task.sleep(for: delay) }
        return "1.0.0"
    }

    func guestChannel(for key: VMKey) async throws -> (any GuestChannel)? {
        LoggingGuest(guest(key), fabric: self)
    }

    func makeSnapshot(of key: VMKey, id: String) async throws -> any FabricSnapshot {
        try await makeSnapshot(of: key, id: id, since: nil)
    }

    func makeSnapshot(of key: VMKey, id: String, since: ChangeBase?) async throws -> any FabricSnapshot {
        log("snapshot")
        if let delay = get(\.snapshotDelay) { try await Task.sleep(for: delay) }
        let snapshot: any FabricSnapshot
        if let late = get(\.lateSnapshot) {
            // Detached: the job's cancellation does not reach it.
            snapshot = try await Task.detached { [inner] in
                try? await Task.sleep(for: late)
                return try await inner.makeSnapshot(of: key, id: id)
            }.value
            log("lateSnapshotTaken")
        } else {
            snapshot = try await inner.makeSnapshot(of: key, id: id)
        }
        set { $0.liveSnapshots.insert(id) }
        var traced = TracingSnapshot(inner: snapshot, id: id, fabric: self)
        guard get(\.tracking) else { return traced }
        // Like a checkpoint per point: changes count from `since` when its checkpoint exists.
        let (writes, known) = state.withLock { s in
            s.sinceSeen.append(since)
            defer { s.writes = [:]; s.checkpoints.insert("cp-\(id)") }
            return (s.writes, since.map { s.checkpoints.contains($0.token) } ?? false)
        }
        traced.changeToken = "cp-\(id)"
        if let since {
            if known {
                traced.disks = traced.disks.map { TrackedDevice($0, since: since.point, changed: writes[$0.name] ?? []) }
            } else {
                traced.resyncReason = "checkpoint \(since.token) is missing"
            }
        }
        return traced
    }

    func removeSnapshot(of key: VMKey, id: String) async throws {
        log("removeSnapshot")
        set { $0.liveSnapshots.remove(id) }
        try await inner.removeSnapshot(of: key, id: id)
    }

    func makeRestoreTarget(_ request: RestoreRequest) async throws -> any RestoreTarget {
        try await inner.makeRestoreTarget(request)
    }

    var runsPoints: Bool { self.get(\.runsPoints) }

    func makeInstantRestore(_ request: InstantRestoreRequest) async throws -> any InstantRestore {
        guard runsPoints else { throw CoffreError(.restoreNotSupported, "no instant restore here") }
        log("instant \(request.name) \(request.purpose)")
        return FakeInstantRestore(fabric: self, request: request)
    }
}

/// An instant restore that opens the point, logs each call in the fabric's events, and copies
/// nothing: what the engine does around a fabric's instant restore, without a hypervisor.
struct FakeInstantRestore: InstantRestore {
    let fabric: TestFabric
    let request: InstantRestoreRequest

    func start() async throws -> String {
        let disks = try await request.openDisks()
        disks.close()
        fabric.log("start")
        return "uuid-\(request.name)"
    }

    func copy(progress: @escaping @Sendable (Int64, Int64) -> Void) async throws {
        fabric.log("copy")
        progress(0, 100)
        while fabric.get(\.holdCopy) {
            try Task.checkCancellation()
            try await Task.sleep(for: .milliseconds(5))
        }
        if fabric.get(\.failCopy) { throw CoffreError(.instantRestoreFailed, "the copy of vda stopped") }
        progress(100, 100)
    }

    func finish() async throws -> RestoredVM {
        fabric.log("finish")
        return RestoredVM(key: VMKey(cloudService: request.original.cloudService, name: request.name),
                          files: request.original.disks.map { "/restored/\(request.name)/\($0.name).qcow2" })
    }

    func checkGuest(command: String?, timeout: Duration) async throws -> String {
        fabric.log("checkGuest")
        return "the guest agent answered"
    }

    func abort() async { fabric.log("abort") }

    func detach() async -> String {
        fabric.log("detach")
        return "The VM \(request.name) is running on the point"
    }
}

/// Logs guest calls into the fabric's event list.
struct LoggingGuest: GuestChannel {
    let inner: FakeGuestChannel
    let fabric: TestFabric
    init(_ inner: FakeGuestChannel, fabric: TestFabric) {
        self.inner = inner
        self.fabric = fabric
    }

    func prepare(job: String, diskCount: Int) async throws -> AgentReport {
        fabric.log("prepare")
        return try await inner.prepare(job: job, diskCount: diskCount)
    }

    func release(job: String) async throws -> AgentReport {
        fabric.log("release")
        return try await inner.release(job: job)
    }
}

struct TracingSnapshot: FabricSnapshot {
    let inner: any FabricSnapshot
    let id: String
    let fabric: TestFabric
    var disks: [any BlockDevice]
    var changeToken: String?
    var resyncReason: String?

    init(inner: any FabricSnapshot, id: String, fabric: TestFabric) {
        self.inner = inner
        self.id = id
        self.fabric = fabric
        disks = inner.disks.map { TracingDevice(inner: $0, fabric: fabric) }
    }

    var cost: String { inner.cost }
    var bytesCopied: Int64 { inner.bytesCopied }

    func delete() async throws {
        fabric.log("deleteSnapshot")
        fabric.set { $0.liveSnapshots.remove(id) }
        try await inner.delete()
    }
}

struct ReadFailure: Error {}

/// Records which disks are being read at once; can hold or fail reads.
final class TracingDevice: BlockDevice {
    let inner: any BlockDevice
    let fabric: TestFabric
    private let started = Mutex(false)

    init(inner: any BlockDevice, fabric: TestFabric) {
        self.inner = inner
        self.fabric = fabric
    }

    var name: String { inner.name }
    var size: Int64 { inner.size }

    func dataExtents(in range: Range<Int64>) throws -> [Range<Int64>] { try inner.dataExtents(in: range) }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws {
        fabric.state.withLock { s in
            s.activeDisks[name, default: 0] += 1
            s.maxConcurrentDisks = max(s.maxConcurrentDisks, s.activeDisks.values.filter { $0 > 0 }.count)
        }
        let first = started.withLock { started in
            defer { started = true }
            return !started
        }
        defer { fabric.state.withLock { $0.activeDisks[name, default: 1] -= 1 } }
        if first { fabric.log("read") }
        while fabric.get(\.holdReads) { usleep(2000) }
        if first, let wanted = fabric.get(\.awaitConcurrentDisks) {
            for _ in 0..<5000 where fabric.get(\.maxConcurrentDisks) < wanted { usleep(2000) }
        }
        if let delay = fabric.get(\.readDelay) {
            usleep(UInt32(delay.inSeconds * 1_000_000))
        }
        if fabric.get(\.failReads) { throw ReadFailure() }
        try inner.read(into: buffer, at: offset)
    }
}

/// A disk with the changes the test reported since a point.
struct TrackedDevice: ChangeTrackingDevice {
    let inner: any BlockDevice
    let changesSince: String
    let changed: [Range<Int64>]

    init(_ inner: any BlockDevice, since point: String, changed: [Range<Int64>]) {
        self.inner = inner
        self.changesSince = point
        self.changed = changed
    }

    var name: String { inner.name }
    var size: Int64 { inner.size }
    func dataExtents(in range: Range<Int64>) throws -> [Range<Int64>] { try inner.dataExtents(in: range) }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws { try inner.read(into: buffer, at: offset) }
    func changedExtents(in range: Range<Int64>) throws -> [Range<Int64>] {
        changed.compactMap { r in r.clamped(to: range).isEmpty ? nil : r.clamped(to: range) }
    }
}
