import Foundation

/// A connection to where VMs live: a local folder of VMs, a libvirt host.
///
/// The engine sees fabrics only through this protocol. Every method may be called from
/// several jobs at once.
public protocol Fabric: Sendable {
    /// The fabric's name in the vault (unique, chosen in configuration).
    var name: String { get }
    /// The region the fabric belongs to.
    var region: String { get }
    /// Every VM the fabric holds now. Throws when the fabric cannot be reached.
    func discover() async throws -> [DiscoveredVM]
    /// The VM as it is now, or nil when the fabric no longer has it.
    func vm(_ key: VMKey) async throws -> DiscoveredVM?
    /// Installs (or connects) the extension in the guest and returns its version (R1).
    /// Takes as long as it takes; the caller applies the install timeout.
    func installExtension(on key: VMKey) async throws -> String
    /// How the vault talks to the extension inside the VM; nil when the VM has no way in.
    func guestChannel(for key: VMKey) async throws -> (any GuestChannel)?
    /// A point-in-time view of every disk of the VM, named `id` (the backup job's id).
    func makeSnapshot(of key: VMKey, id: String) async throws -> any FabricSnapshot
    /// The same, for a fabric with changed-block tracking: `since` is the VM's latest recovery
    /// point and the marker the fabric gave with it; the snapshot's disks may then be
    /// `ChangeTrackingDevice`s counting from that point. The default ignores `since`.
    func makeSnapshot(of key: VMKey, id: String, since: ChangeBase?) async throws -> any FabricSnapshot
    /// Removes a snapshot a previous run left behind (the run was killed); no error when absent.
    func removeSnapshot(of key: VMKey, id: String) async throws
    /// A place to restore a point's disks into, committed or aborted by the caller (X1).
    func makeRestoreTarget(_ request: RestoreRequest) async throws -> any RestoreTarget
    /// Whether `makeInstantRestore` can run a VM from a point (instant restore, boot checks).
    var runsPoints: Bool { get }
    /// A VM run from a point's disks, served by the vault (instant restore, boot checks).
    /// The default refuses with `RestoreNotSupported`.
    func makeInstantRestore(_ request: InstantRestoreRequest) async throws -> any InstantRestore
    /// Cleans up after an instant restore whose process was killed (job `job`, VM `name`, of
    /// fabric id `id` when `start()` had returned it): a verification's VM is removed; a
    /// restore's VM is kept (its users' writes are in it) and described. A VM that is not the
    /// job's is never touched. Returns what is left, in words for the job's record; nil when nothing.
    func recoverInstantRestore(job: String, name: String, id: String?, purpose: InstantRestoreRequest.Purpose) async -> String?
}

/// A point-in-time view of a VM's disks, alive until `delete()`.
public protocol FabricSnapshot: Sendable {
    /// One device per disk, named as the VM's disks.
    var disks: [any BlockDevice] { get }
    /// What taking the snapshot cost, in words ("reflink", "copied 2.1 GiB in 3.2 s").
    var cost: String { get }
    /// Bytes copied to take the snapshot (0 for a reflink or a hypervisor snapshot).
    var bytesCopied: Int64 { get }
    /// Deletes the snapshot. Must be called even when the job fails or is cancelled.
    func delete() async throws
    /// The fabric's marker for this snapshot (a libvirt checkpoint name), recorded on the
    /// recovery point and given back as `ChangeBase.token` for the next backup; nil when the
    /// fabric tracks no changes.
    var changeToken: String? { get }
    /// Why the disks carry no changes although `since` was given (bitmap missing, disk
    /// added, …): the backup reads everything. Recorded on the point.
    var resyncReason: String? { get }
    /// The VM's configuration in the fabric's own words (libvirt's domain XML), kept with the
    /// point so that a restore as a new VM still works once the original is gone; nil when
    /// the catalog's description of the VM is all a restore needs.
    var definition: String? { get }
}

extension Fabric {
    public func makeSnapshot(of key: VMKey, id: String, since: ChangeBase?) async throws -> any FabricSnapshot {
        try await makeSnapshot(of: key, id: id)
    }
}

extension FabricSnapshot {
    public var changeToken: String? { nil }
    public var resyncReason: String? { nil }
    public var definition: String? { nil }
}

/// Where changed-block tracking starts from: a recovery point and the fabric's marker for it.
public struct ChangeBase: Sendable, Equatable {
    public var point: String
    public var token: String

    public init(point: String, token: String) {
        self.point = point
        self.token = token
    }
}

/// Where a restore should land.
public enum RestoreRequest: Sendable, Equatable {
    /// A new VM in the fabric, named `name`, in the original's cloud service, shaped like
    /// `original`; `definition` is the one the fabric gave with the point's snapshot.
    case newVM(name: String, original: DiscoveredVM, definition: String? = nil)
    /// Over the disks of an existing VM (replace disks); the fabric refuses when that is unsafe.
    case replaceDisks(VMKey)
}

/// A folder to restore disks into, then made visible (or thrown away) as a whole.
public protocol RestoreTarget: Sendable {
    /// Where the restore writes one file per disk, named by `format.fileName(forDisk:)`.
    var directory: String { get }
    /// The format the restore writes the disks in (raw unless the target says otherwise).
    var format: DiskFormat { get }
    /// Makes the restored disks the VM's: a new VM appears, or the disks are swapped in.
    /// - Returns: the VM that now has the disks, and where they are.
    func commit() async throws -> RestoredVM
    /// Throws away what was restored; the fabric is as before.
    func abort() async
}

extension RestoreTarget {
    public var format: DiskFormat { .raw }
}

/// What a committed restore made: the VM that has the disks, their files where they now are,
/// and what the fabric had to change or leave out so that the VM stands on its own.
public struct RestoredVM: Sendable, Equatable {
    public var key: VMKey
    /// Every restored disk's file, at its final place (never a staging path).
    public var files: [String]
    /// Devices left out of, or changed in, the new VM's configuration, in words (a host device
    /// the original holds, a fixed port); empty when there was nothing to say.
    public var notes: [String]

    public init(key: VMKey, files: [String], notes: [String] = []) {
        self.key = key
        self.files = files
        self.notes = notes
    }
}

/// How the vault reaches the extension inside a guest (B1): `coffre-agent` run as a
/// subprocess (local fabric) or through the hypervisor's guest agent.
///
/// The conversation is the JSON protocol in `docs/agent-protocol.md` (`AgentReport`).
public protocol GuestChannel: Sendable {
    /// Pre-script, then freeze. A thrown error means the agent could not be reached or
    /// answered nonsense; a report with `ok == false` means the agent says the backup must fail.
    func prepare(job: String, diskCount: Int) async throws -> AgentReport
    /// Thaw, then post-script. Called as soon as the snapshot exists, and also when taking it failed.
    func release(job: String) async throws -> AgentReport
}
