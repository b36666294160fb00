import Foundation

/// A VM run straight from a recovery point's disks, which the vault serves while it runs
/// (instant restore; the boot check of a verification).
public struct InstantRestoreRequest: Sendable {
    public enum Purpose: Sendable, Equatable {
        /// A new VM that stays: its disks are copied to the fabric while it runs, then it
        /// switches to them.
        case restore
        /// A throw-away VM cut off from everything the original reaches (no network, no shared
        /// disks or folders), removed after its check: a boot verification.
        case verification
    }

    /// The new VM's name.
    public var name: String
    /// The VM the point was taken of, as the catalog last saw it.
    public var original: DiscoveredVM
    /// The fabric's definition of the VM kept with the point (`FabricSnapshot.definition`).
    public var definition: String?
    /// Opens the point's disks, read (and verified) on demand. The instant restore opens them
    /// once in `start()` and closes them in `finish()` or `abort()`.
    public var openDisks: @Sendable () async throws -> any PointDisks
    public var purpose: Purpose
    /// The job's id, for the names of scratch files.
    public var job: String

    public init(
        name: String, original: DiscoveredVM, definition: String?, purpose: Purpose, job: String,
        openDisks: @escaping @Sendable () async throws -> any PointDisks
    ) {
        self.name = name
        self.original = original
        self.definition = definition
        self.openDisks = openDisks
        self.purpose = purpose
        self.job = job
    }
}

/// One instant restore in a fabric, driven by the engine step by step. `abort()` is owed
/// whenever a step fails or the job is cancelled, and after a verification.
public protocol InstantRestore: Sendable {
    /// Serves the point's disks to the fabric, defines the VM on them (its writes go to local
    /// overlays) and starts it.
    /// - Returns: the fabric's id of the VM (libvirt: its UUID), recorded on the job so that a
    ///   later recovery touches this VM only.
    func start() async throws -> String
    /// Copies the disks to the VM's own files while it runs. `progress` gets the bytes copied
    /// and the total; returns once every copy has caught up with the running disks.
    /// **Cancellation**: returns `Cancelled` soon after the task is cancelled.
    func copy(progress: @escaping @Sendable (_ copied: Int64, _ total: Int64) -> Void) async throws
    /// Switches the running VM to its own files, makes its definition name them, and stops
    /// serving the point.
    func finish() async throws -> RestoredVM
    /// Waits until the VM's guest agent answers, then runs `command` (when given) in the guest;
    /// throws `BootVerificationFailed` when neither happens within `timeout`.
    func checkGuest(command: String?, timeout: Duration) async throws -> String
    /// Removes the VM, its overlays and copies; stops serving. The fabric is as before.
    func abort() async
    /// Stops serving the point but keeps the started VM and its overlays (the process is going
    /// away, and the VM may hold its users' writes). Returns what is left and what to do, in words.
    func detach() async -> String
}

extension Fabric {
    public var runsPoints: Bool { false }

    /// Fabrics that cannot run a VM from a point refuse (`RestoreNotSupported`).
    public func makeInstantRestore(_ request: InstantRestoreRequest) async throws -> any InstantRestore {
        throw CoffreError(.restoreNotSupported, "The fabric \(name) cannot run a VM from a recovery point",
                          workaround: "Restore the point as a new VM or to a folder instead")
    }

    public func recoverInstantRestore(job: String, name: String, id: String?, purpose: InstantRestoreRequest.Purpose) async -> String? {
        nil
    }
}
