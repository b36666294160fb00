#if Libvirt
public import CoffreCore
import CoffreSystem
import CoffreNBD
import Foundation
import Synchronization

/// The VMs of a libvirt host (X1): discovery of every domain, registration by pushing
/// `coffre-agent` through qemu-guest-agent, backups through libvirt's backup API in pull mode
/// with a checkpoint (dirty bitmaps) per recovery point, restore as a new domain.
public final class LibvirtFabric: Fabric {
    public struct Configuration: Sendable {
        /// The fabric's name in the vault.
        public var name: String
        /// `qemu:///system`, `qemu+ssh://root@host/system`, …
        public var uri: String
        public var region: String
        /// The cloud service of every domain; default: the host's name.
        public var cloudService: String?
        /// Fleecing scratch files and NBD sockets, one folder per backup; must be on the host
        /// that runs QEMU (and have room for what the guest overwrites during a backup).
        public var scratchDirectory: String
        /// Disks of VMs restored as new domains, one folder per VM.
        public var restoreDirectory: String
        /// The `coffre-agent` binary registration copies into guests (statically linked);
        /// nil: guests get no coffre-agent and are frozen through qemu-guest-agent alone.
        public var agentBinary: String?
        /// Where `coffre-agent` goes in the guest.
        public var agentGuestPath = "/usr/local/bin/coffre-agent"
        /// The file that says which coffre-agent is installed (read by discovery).
        public var extensionVersionPath = "/var/lib/coffre/extension-version"
        /// How long `coffre-agent prepare|release` may take in the guest.
        public var agentTimeoutSeconds = 600.0
        /// NBD connections per disk while backing up.
        public var connectionsPerDisk = 2
        /// The most an instant restore's copy may read and write per second, in bytes (it runs
        /// beside the VM it copies); nil: as fast as the host goes.
        public var instantCopyBandwidth: Int64?

        public init(name: String, uri: String, region: String, scratchDirectory: String, restoreDirectory: String) {
            self.name = name
            self.uri = uri
            self.region = region
            self.scratchDirectory = scratchDirectory
            self.restoreDirectory = restoreDirectory
        }
    }

    public let configuration: Configuration
    private let open = Mutex<LibvirtConnection?>(nil)

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    public var name: String { configuration.name }
    public var region: String { configuration.region }

    /// The connection, opened on first use and again after a failure dropped it.
    func connection() async throws -> LibvirtConnection {
        if let connection = open.withLock({ $0 }) { return connection }
        let connection = try await LibvirtConnection.open(configuration.uri)
        return open.withLock { current in
            if let current { return current }
            current = connection
            return connection
        }
    }

    /// Runs `body` on the connection; when it fails because libvirtd went away (restarted),
    /// the connection is dropped so that the next call opens a new one.
    func withConnection<T>(_ body: (LibvirtConnection) async throws -> T) async throws -> T {
        let connection = try await connection()
        do {
            return try await body(connection)
        } catch {
            if !connection.isAlive { open.withLock { if $0 === connection { $0 = nil } } }
            throw error
        }
    }

    private func discovery(_ connection: LibvirtConnection) -> LibvirtDiscovery {
        var settings = LibvirtDiscovery.Configuration(region: configuration.region, cloudService: configuration.cloudService)
        settings.extensionVersionPath = configuration.extensionVersionPath
        return LibvirtDiscovery(connection: connection, configuration: settings)
    }

    // MARK: Discovery

    public func discover() async throws -> [DiscoveredVM] {
        try await withConnection { try await discovery($0).discover() }
    }

    public func vm(_ key: VMKey) async throws -> DiscoveredVM? {
        try await withConnection { connection in
            let discovery = discovery(connection)
            guard try await discovery.cloudService() == key.cloudService else { return nil }
            return try await discovery.vm(named: key.name)
        }
    }

    /// The domain of `key`, or `VMNotFound`.
    func domain(_ key: VMKey) async throws -> LibvirtDomain {
        try await withConnection { connection in
            guard try await discovery(connection).cloudService() == key.cloudService,
                  let domain = try await connection.domain(named: key.name)
            else { throw CoffreError.vmNotFoundInFabric(key, fabric: name) }
            return domain
        }
    }

    // MARK: Registration and the guest

    /// R1: copies `coffre-agent` into the guest (mode 700, root), runs `coffre-agent version`
    /// there and records the version for discovery. Without a binary to copy, the guest agent
    /// alone is the extension (freeze and thaw only).
    public func installExtension(on key: VMKey) async throws -> String {
        let domain = try await domain(key)
        guard try await domain.state().powerState == .running else { throw CoffreError.vmNotRunning(key) }
        let agent: GuestAgentInfo
        do {
            agent = try await domain.guestInfo()
        } catch {
            throw CoffreError.vmAgentNotFound(key, minimum: "any")
        }
        guard let binary = configuration.agentBinary else { return "qemu-guest-agent \(agent.version)" }
        guard FileManager.default.isReadableFile(atPath: binary) else {
            throw CoffreError(.extensionPackageMissing, "The coffre-agent to install (\(binary)) cannot be read",
                              workaround: "Build it with scripts/build-agent (a fully static binary) and set the fabric's agentBinary")
        }
        let directory = (configuration.agentGuestPath as NSString).deletingLastPathComponent
        _ = try await domain.guestExec(path: "/bin/mkdir", arguments: ["-p", directory, (configuration.extensionVersionPath as NSString).deletingLastPathComponent])
        try await domain.guestUpload(file: binary, to: configuration.agentGuestPath, mode: 0o700)
        let result = try await domain.guestExec(path: configuration.agentGuestPath, arguments: ["version"], timeoutSeconds: 60)
        guard result.exitCode == 0 else {
            throw CoffreError(.extensionInstallFailed,
                              "coffre-agent was copied into \(key) but does not run there (exit \(result.exitCode.map(String.init) ?? "?")): \(result.errorOutput.suffix(300))",
                              workaround: "Check that the guest is x86-64 Linux; build the binary with scripts/build-agent (fully static)")
        }
        let version = try AgentReport.decode(result.stdout, verb: "version", vm: key).agentVersion
        try await domain.guestWriteFile(path: configuration.extensionVersionPath, data: Data((version + "\n").utf8), mode: 0o644)
        return version
    }

    /// coffre-agent when registration installed it; else freeze/thaw through qemu-guest-agent;
    /// nil when no agent answers (crash-consistent points).
    public func guestChannel(for key: VMKey) async throws -> (any GuestChannel)? {
        let domain = try await domain(key)
        guard let agent = try? await domain.guestInfo() else { return nil }
        // The version file registration wrote says coffre-agent is there: reading it costs the
        // guest agent a file read, not a process (which takes ~0.3 s in an emulated guest).
        let installed = (try? await domain.guestReadFile(path: configuration.extensionVersionPath, limit: 4096))
            .map { !String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).isEmpty } ?? false
        if installed {
            return AgentGuestChannel(domain: domain, vm: key, agentPath: configuration.agentGuestPath,
                                     timeoutSeconds: configuration.agentTimeoutSeconds)
        }
        guard agent.enabledCommands.isEmpty || agent.enabledCommands.contains("guest-fsfreeze-freeze") else { return nil }
        return FreezeGuestChannel(domain: domain, agentVersion: agent.version)
    }

    // MARK: Backups

    public func makeSnapshot(of key: VMKey, id: String) async throws -> any FabricSnapshot {
        try await makeSnapshot(of: key, id: id, since: nil)
    }

    /// Starts a pull-mode backup with checkpoint `coffre-<id>`: incremental from `since` when
    /// its checkpoint still exists, else full with the reason recorded. Only qcow2 disks can
    /// hold dirty bitmaps; other disks are read in full every time.
    public func makeSnapshot(of key: VMKey, id: String, since: ChangeBase?) async throws -> any FabricSnapshot {
        let domain = try await domain(key)
        let description = try await domain.describe()
        // Kept with the point: a restore as a new VM must not need the original domain.
        let definition = try await domain.xml(inactive: true)
        guard description.state.isActive else {
            return try await makeShutOffSnapshot(domain, key: key, description: description, id: id, since: since,
                                                 definition: definition)
        }
        let disks = description.disks
        let tracked = disks.filter { $0.format == "qcow2" }.map(\.target)
        let untracked = disks.filter { $0.format != "qcow2" }.map(\.target)
        let checkpoint = Self.checkpointName(id)
        var resync: String?
        var incremental: ChangeBase?
        if let since {
            let existing = try await domain.checkpointNames()
            if !existing.contains(since.token) {
                resync = "checkpoint \(since.token) no longer exists (its metadata was deleted, or the VM was re-created or moved)"
            } else if tracked.isEmpty {
                resync = "no disk can hold a dirty bitmap (only qcow2 disks can)"
            } else {
                incremental = since
                if !untracked.isEmpty { resync = "disks \(untracked.joined(separator: ", ")) are not qcow2: read in full" }
            }
        }

        let folder = try makeScratchFolder(id)
        let socket = folder + "/nbd.sock"
        let scratch = disks.map { BackupXML.Disk(target: $0.target, scratch: folder + "/\($0.target).scratch.qcow2") }
        let checkpointXML = tracked.isEmpty ? nil : BackupXML.checkpoint(name: checkpoint, disks: tracked, excluded: untracked)
        let started = ContinuousClock.now
        do {
            do {
                try await domain.beginBackup(BackupXML.pull(socket: socket, disks: scratch, excluded: [], since: incremental?.token),
                                             checkpointXML: checkpointXML)
            } catch let error as CoffreError where incremental != nil {
                // A disk added since the checkpoint, a bitmap lost in a qcow2 file: libvirt
                // refuses the incremental. A full read is still right, only slower.
                resync = "libvirt refused the incremental from \(incremental!.token): \(error.message)"
                incremental = nil
                try await domain.beginBackup(BackupXML.pull(socket: socket, disks: scratch, excluded: [], since: nil),
                                             checkpointXML: checkpointXML)
            }
        } catch {
            try? FileManager.default.removeItem(atPath: folder)
            throw error
        }
        let elapsed = formatSeconds((ContinuousClock.now - started).inSeconds)
        do {
            var devices: [NBDDevice] = []
            var blockDevices: [any BlockDevice] = []
            for disk in disks {
                let changes = incremental != nil && tracked.contains(disk.target)
                let device = try NBDDevice(configuration: .init(
                    endpoint: .unix(path: socket), export: disk.target, name: disk.target,
                    extents: changes ? .dirtyBitmap("backup-\(disk.target)") : .allocation,
                    maxConnections: configuration.connectionsPerDisk))
                devices.append(device)
                blockDevices.append(changes ? LibvirtChangedDisk(device: device, changesSince: incremental!.point) as any BlockDevice
                                            : LibvirtDisk(device: device))
            }
            let kind = incremental.map { "incremental from checkpoint \($0.token)" } ?? "full"
            return LibvirtSnapshot(
                fabric: self, domain: domain, id: id, devices: devices, disks: blockDevices,
                cost: "libvirt pull backup (\(kind)), checkpoint \(checkpointXML == nil ? "none" : checkpoint), started in \(elapsed)",
                changeToken: checkpointXML == nil ? nil : checkpoint,
                resyncReason: since == nil ? nil : resync,
                definition: definition,
                keep: Set([checkpoint] + (since.map { [$0.token] } ?? [])))
        } catch {
            try? await endBackup(domain, id: id)
            throw error
        }
    }

    public func removeSnapshot(of key: VMKey, id: String) async throws {
        let folder = scratchFolder(id)
        guard FileManager.default.fileExists(atPath: folder) else { return }
        QemuNBDServer.stopAll(in: folder)
        try await endBackup(try await domain(key), id: id)
    }

    /// Ends the pull-mode job of backup `id` and removes its scratch folder.
    func endBackup(_ domain: LibvirtDomain, id: String) async throws {
        defer { try? FileManager.default.removeItem(atPath: scratchFolder(id)) }
        try await domain.endBackupJob()
    }

    /// Deletes Coffre's checkpoints other than `keep`: those of older points and of failed
    /// backups (their bitmaps merge into their parents', so the chain stays right).
    func pruneCheckpoints(_ domain: LibvirtDomain, keeping keep: Set<String>) async {
        guard let names = try? await domain.checkpointNames() else { return }
        for name in names where Self.isCoffreCheckpoint(name) && !keep.contains(name) {
            try? await domain.deleteCheckpoint(name)
        }
    }

    /// Coffre's checkpoints are `coffre-<backup job id>`; others on the domain are not ours.
    static let checkpointPrefix = "coffre-"
    static func checkpointName(_ id: String) -> String { checkpointPrefix + id }
    static func isCoffreCheckpoint(_ name: String) -> Bool { name.hasPrefix(checkpointPrefix) }

    func scratchFolder(_ id: String) -> String { configuration.scratchDirectory + "/" + id }

    /// A folder QEMU can write its scratch files and NBD socket into (owned by libvirt-qemu
    /// when that user exists: QEMU runs as it under qemu:///system).
    func makeScratchFolder(_ id: String) throws -> String {
        let folder = scratchFolder(id)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        do {
            _ = try FileIO.giveToUser(folder, user: "libvirt-qemu")
        } catch {
            throw CoffreError(.scratchFolderUnusable, "Cannot give \(folder) to libvirt-qemu: \(error.message)",
                              workaround: "Point the fabric's scratchDirectory at a local folder root can chown", cause: error)
        }
        return folder
    }

    // MARK: Restore

    public func makeRestoreTarget(_ request: RestoreRequest) async throws -> any RestoreTarget {
        switch request {
        case .newVM(let newName, let original, let definition):
            guard Naming.isValid(newName) else { throw CoffreError.invalidName("VM name", newName) }
            let connection = try await connection()
            let originalXML = try await definitionForNewDomain(newName, original: original, kept: definition, connection)
            let final = configuration.restoreDirectory + "/" + newName
            guard !FileManager.default.fileExists(atPath: final) else { throw CoffreError.restoreTargetExists(final) }
            // Made before any data is written: a definition that cannot be copied fails at once.
            let files = original.disks.map { ($0.name, final + "/" + DiskFormat.qcow2.fileName(forDisk: $0.name)) }
            let definition = try RestoreXML.newDomain(from: originalXML, name: newName,
                                                      files: Dictionary(uniqueKeysWithValues: files), directory: final,
                                                      format: DiskFormat.qcow2.rawValue)
            let staging = configuration.restoreDirectory + "/.staging-\(newName)-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
            return NewDomainTarget(connection: connection, definition: definition, key: VMKey(cloudService: original.cloudService, name: newName),
                                   files: files.map(\.1), staging: staging, final: final)
        case .replaceDisks(let key):
            let domain = try await domain(key)
            let description = try await domain.describe()
            guard !description.state.isActive else { throw CoffreError.vmMustBeStopped(key) }
            for disk in description.disks where disk.type != "file" || !["raw", "qcow2", nil].contains(disk.format) {
                throw CoffreError(.restoreNotSupported,
                                  "The disk \(disk.target) of \(key) is a \(disk.type) \(disk.format ?? "") disk; only raw and qcow2 files can be replaced",
                                  workaround: "Restore to a folder (--to DIR) and copy the disk by hand")
            }
            let staging = configuration.restoreDirectory + "/.replace-\(key.name)-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
            return ReplaceDisksTarget(domain: domain, key: key, disks: description.disks, staging: staging)
        }
    }
}

extension LibvirtFabric {
    /// The definition a new domain `name` is copied from: the one kept with the point, else
    /// (points taken before it was kept) the live domain's. Refuses a name the host has.
    func definitionForNewDomain(
        _ name: String, original: DiscoveredVM, kept definition: String?, _ connection: LibvirtConnection
    ) async throws -> String {
        if try await connection.domain(named: name) != nil {
            throw CoffreError(.vmAlreadyExists, "The libvirt host already has a domain \(name)",
                              workaround: "Choose another name for the restored VM")
        }
        if let definition { return definition }
        if let source = try await connection.domain(named: original.name) { return try await source.xml(inactive: true) }
        throw CoffreError(.originalDefinitionMissing,
                          "The point holds no definition of \(original.key) and the domain no longer exists; both are needed to create \(name)",
                          workaround: "Restore the point to a folder (--to DIR) and define the VM from those disks")
    }
}

/// Disks restored into a staging folder as qcow2 images (so the new domain gets checkpoints
/// and incremental backups like the original), then moved next to each other and defined as a
/// new domain in one commit; `abort` leaves the host as it was.
struct NewDomainTarget: RestoreTarget {
    let connection: LibvirtConnection
    /// The copy of the original's definition, naming `files` in `final`.
    let definition: RestoreXML.Result
    let key: VMKey
    /// The disks' files once in `final`.
    let files: [String]
    let staging: String
    let final: String

    var directory: String { staging }
    var format: DiskFormat { .qcow2 }

    func commit() async throws -> RestoredVM {
        try await runOnThread { _ in
            guard !FileIO.hasEntry(final) else { throw CoffreError.restoreTargetExists(final) }
            try FileIO.rename(staging, to: final)
        }
        do {
            let copied = try await runOnThread { _ in
                // The UEFI variables as they are now (the point does not hold them); libvirt
                // makes them from its template when the original's are gone.
                try definition.copies.filter { FileIO.exists($0.from) }.map { copy in
                    try FileIO.writeFileAtomically(copy.to, try FileIO.readExistingFile(copy.from), mode: 0o600)
                    return copy.from
                }
            }
            _ = try await connection.define(definition.xml)
            return RestoredVM(key: key, files: files,
                              notes: definition.notes + copied.map { "UEFI variables copied from \($0) as they are now" })
        } catch {
            try? await runOnThread { _ in try FileIO.removeTree(final) }
            throw error
        }
    }

    func abort() async {
        try? FileManager.default.removeItem(atPath: staging)
    }
}

/// Disks restored into a staging folder, then written over a shut-off domain's disk files: each
/// converted next to its file in the file's format first (the long part), then all renamed
/// over the originals. The old qcow2 files carried the checkpoints' bitmaps, so the domain's
/// checkpoint metadata is dropped: the next backup reads in full, with that reason.
struct ReplaceDisksTarget: RestoreTarget {
    let domain: LibvirtDomain
    let key: VMKey
    let disks: [DomainDisk]
    let staging: String

    var directory: String { staging }

    func commit() async throws -> RestoredVM {
        guard try await !domain.state().isActive else { throw CoffreError.vmMustBeStopped(key) }
        var converted: [(temporary: String, final: String)] = []
        do {
            for disk in disks {
                guard let source = disk.source else { continue }
                let temporary = source + ".coffre-restore"
                try await runOnThread { _ in
                    try qemuImg(["convert", "-q", "-f", "raw", "-O", disk.format ?? "raw", "-S", "64k",
                                 staging + "/" + disk.target, temporary])
                }
                converted.append((temporary, source))
            }
            for file in converted { try FileIO.replace(file.final, with: file.temporary) }
        } catch {
            for file in converted { try? FileManager.default.removeItem(atPath: file.temporary) }
            throw error
        }
        for name in try await domain.checkpointNames().reversed() { try await domain.deleteCheckpoint(name, metadataOnly: true) }
        try? FileManager.default.removeItem(atPath: staging)
        return RestoredVM(key: key, files: converted.map(\.final))
    }

    func abort() async {
        try? FileManager.default.removeItem(atPath: staging)
    }
}

/// Runs `qemu-img` (Debian's qemu-utils) and throws its message when it fails.
func qemuImg(_ arguments: [String]) throws {
    let (status, message) = try HostCommand.run(
        "/usr/bin/qemu-img", arguments, log: NSTemporaryDirectory() + "coffre-qemu-img-\(UUID().uuidString).log",
        missing: CoffreError(.qemuImgMissing, "Cannot run /usr/bin/qemu-img", workaround: "apt-get install -y qemu-utils"))
    guard status == 0 else {
        throw CoffreError(.qemuImgFailed, "qemu-img \(arguments.joined(separator: " ")) failed: \(message)",
                          workaround: "Check free space next to the VM's disks")
    }
}
#endif
