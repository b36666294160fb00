public import CoffreCore
import CoffreSystem
import Foundation

/// The embedded-default fabric: VMs as folders of raw disk images, so that anyone can try
/// Coffre without a hypervisor (docs/local-fabric.md).
///
/// A VM is a folder holding `vm.json` (`VMDefinition`) and its disk files, at most three
/// levels below the root: `<root>/<cloudService>/<name>/vm.json` is the usual shape. The guest's
/// file system is the VM folder's `guest/` folder; the extension is `coffre-agent` run as a
/// subprocess with `--root <guest>`.
public final class LocalFabric: Fabric {
    public struct Configuration: Sendable {
        /// The folder holding the VM folders.
        public var root: String
        public var name = "local"
        public var region = "local"
        /// The extension's command line (program and leading arguments); default: `coffre-agent`
        /// next to the running executable, else on `PATH`.
        public var agentCommand: [String]
        /// How long one `prepare` or `release` may take before the agent is killed.
        public var agentTimeout: Duration = .seconds(300)

        public init(root: String) {
            self.root = FileIO.absolutePath(root)
            self.agentCommand = [Self.defaultAgentPath()]
        }

        /// coffre-agent beside the running coffre (a build folder), else the package's, else PATH's.
        static func defaultAgentPath() -> String {
            if let folder = Bundle.main.executableURL?.resolvingSymlinksInPath().deletingLastPathComponent() {
                let sibling = folder.appendingPathComponent("coffre-agent").path
                if FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
            }
            return packagedAgentPath() ?? "coffre-agent"
        }

        /// The static coffre-agent of the Debian package, /usr/lib/coffre/coffre-agent beside
        /// /usr/bin/coffre, when this coffre is the package's.
        public static func packagedAgentPath() -> String? {
            guard let folder = Bundle.main.executableURL?.resolvingSymlinksInPath().deletingLastPathComponent() else {
                return nil
            }
            let path = folder.deletingLastPathComponent().appendingPathComponent("lib/coffre/coffre-agent").standardized.path
            return FileManager.default.isExecutableFile(atPath: path) ? path : nil
        }
    }

    public let configuration: Configuration
    public var name: String { configuration.name }
    public var region: String { configuration.region }

    static let definitionFile = "vm.json"
    /// Snapshots of running VMs, one folder per backup job.
    static let snapshotFolder = ".coffre-snapshots"
    /// New VMs being restored, made visible by one rename.
    static let restoreFolder = ".coffre-restores"
    /// The guest's root inside a VM folder.
    static let guestFolder = "guest"
    /// Written by registration: the installed extension's version.
    static let extensionVersionFile = "guest/var/lib/coffre/extension-version"
    /// VM folders are looked for this many levels below the root.
    static let maximumDepth = 3

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    // MARK: Discovery

    /// A VM folder as found on disk.
    struct Entry {
        var folder: String
        var vm: DiscoveredVM
    }

    public func discover() async throws -> [DiscoveredVM] {
        try await runOnThread { _ in try self.scan().map(\.vm) }
    }

    public func vm(_ key: VMKey) async throws -> DiscoveredVM? {
        try await entry(key)?.vm
    }

    func entry(_ key: VMKey) async throws -> Entry? {
        try await runOnThread { _ in try self.scan().first { $0.vm.key == key } }
    }

    /// Every VM folder under the root, in path order. A folder whose `vm.json` is broken is
    /// still reported (named by its folder), with the problem as an unsupported feature, so
    /// that registration says what to fix instead of the VM silently missing.
    func scan() throws -> [Entry] {
        let root = configuration.root
        guard FileIO.isDirectory(root) else {
            throw CoffreError(.fabricUnreachable, "The local fabric folder \(root) does not exist or cannot be read",
                              workaround: "Create the folder or fix the fabric's path in coffre.json")
        }
        var entries: [Entry] = []
        var seen: [VMKey: Int] = [:]
        func visit(_ folder: String, parent: String?, depth: Int) {
            for child in FileIO.visibleEntries(folder) {
                let path = folder + "/" + child
                guard FileIO.isDirectory(path) else { continue }
                if FileIO.hasEntry(path + "/" + Self.definitionFile) {
                    let entry = makeEntry(folder: path, parent: parent)
                    if let first = seen[entry.vm.key] {
                        entries[first].vm.unsupportedFeatures.append(
                            "the folder \(path) defines a VM with the same name and cloud service; rename one of them")
                    } else {
                        seen[entry.vm.key] = entries.count
                        entries.append(entry)
                    }
                } else if depth < Self.maximumDepth {
                    visit(path, parent: child, depth: depth + 1)
                }
            }
        }
        visit(root, parent: nil, depth: 1)
        return entries
    }

    private func makeEntry(folder: String, parent: String?) -> Entry {
        let folderName = FileIO.baseName(folder)
        let defaultService = parent ?? configuration.name
        do {
            let definition = try VMDefinition.load(folder: folder)
            var unsupported = definition.unsupportedFeatures
            let disks = definition.disks.enumerated().map { index, disk in
                let path = folder + "/" + disk
                let status = FileIO.status(path)
                if status?.kind != .regular {
                    unsupported.append("the disk file \(path) is missing or not a regular file")
                }
                return VirtualDisk(name: disk, size: status?.size ?? 0, isOSDisk: index == 0)
            }
            let vm = DiscoveredVM(
                name: definition.name ?? folderName, cloudService: definition.cloudService ?? defaultService,
                region: definition.region ?? configuration.region, osType: definition.osType,
                powerState: definition.powerState, agentVersion: definition.agentVersion,
                extensionVersion: Self.extensionVersion(folder: folder), disks: disks, unsupportedFeatures: unsupported)
            return Entry(folder: folder, vm: vm)
        } catch {
            let reason = (error as? CoffreError)?.message ?? "\(error)"
            let vm = DiscoveredVM(name: folderName, cloudService: defaultService, region: configuration.region,
                                  powerState: .unknown, disks: [], unsupportedFeatures: [reason])
            return Entry(folder: folder, vm: vm)
        }
    }

    static func extensionVersion(folder: String) -> String? {
        guard let data = FileManager.default.contents(atPath: folder + "/" + extensionVersionFile) else { return nil }
        let version = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return version.isEmpty ? nil : version
    }

    func requireEntry(_ key: VMKey) async throws -> Entry {
        guard let entry = try await entry(key) else { throw CoffreError.vmNotFoundInFabric(key, fabric: name) }
        return entry
    }

    // MARK: Extension

    /// Runs `coffre-agent version` for the guest and records the version it reports in the guest.
    public func installExtension(on key: VMKey) async throws -> String {
        let entry = try await requireEntry(key)
        let agent = LocalGuestChannel(vm: key, guestRoot: entry.folder + "/" + Self.guestFolder,
                                      command: configuration.agentCommand, timeout: configuration.agentTimeout)
        let report = try await agent.run(["version"], job: nil)
        guard report.ok, !report.agentVersion.isEmpty else {
            throw CoffreError(.extensionInstallFailed,
                              "coffre-agent did not confirm its version in \(key): \(report.errors.map(\.message).joined(separator: "; "))",
                              workaround: "Run `\(configuration.agentCommand.joined(separator: " ")) version` by hand and fix what it says")
        }
        let versionFile = entry.folder + "/" + Self.extensionVersionFile
        try FileIO.makeDirectories(FileIO.directoryName(versionFile))
        try FileIO.writeFileAtomically(versionFile, Array((report.agentVersion + "\n").utf8))
        return report.agentVersion
    }

    /// The extension when registration installed it; nil when the VM has no agent or extension.
    public func guestChannel(for key: VMKey) async throws -> (any GuestChannel)? {
        let entry = try await requireEntry(key)
        guard entry.vm.agentVersion != nil, entry.vm.extensionVersion != nil else { return nil }
        return LocalGuestChannel(vm: key, guestRoot: entry.folder + "/" + Self.guestFolder,
                                 command: configuration.agentCommand, timeout: configuration.agentTimeout)
    }

    // MARK: Snapshots

    /// A running VM's disks are cloned (reflink) where the file system can, else copied
    /// (holes kept); a stopped VM's disks cannot change, so they are read in place.
    public func makeSnapshot(of key: VMKey, id: String) async throws -> any FabricSnapshot {
        let entry = try await requireEntry(key)
        guard Naming.isValid(id) else { throw CoffreError(.invalidArgument, "'\(id)' is not a valid snapshot name") }
        let sources = entry.vm.disks.map { entry.folder + "/" + $0.name }
        if entry.vm.powerState == .stopped {
            let devices: [any BlockDevice] = try sources.map { try RawFileDevice(path: $0) }
            return LocalSnapshot(disks: devices, folder: nil, cost: "none: the VM is stopped, its disks are read in place",
                                 bytesCopied: 0)
        }
        let folder = snapshotFolder(id)
        try FileIO.removeTree(folder)
        try FileIO.makeDirectories(folder)
        do {
            let started = ContinuousClock.now
            let copies = try await runOnThread { cancelled in
                try sources.map { source in
                    try DiskCopy.clone(source, to: folder + "/" + FileIO.baseName(source), cancelled: cancelled)
                }
            }
            let devices: [any BlockDevice] = try copies.map { try RawFileDevice(path: $0.path) }
            let copied = copies.reduce(Int64(0)) { $0 + $1.bytesCopied }
            let cost = copies.allSatisfy(\.reflinked) ? "reflink (no data copied)"
                : "copied \(ByteSize.format(copied)) in \(formatSeconds((ContinuousClock.now - started).inSeconds)) (this file system cannot reflink)"
            return LocalSnapshot(disks: devices, folder: folder, cost: cost, bytesCopied: copied)
        } catch {
            try? FileIO.removeTree(folder)
            throw error
        }
    }

    public func removeSnapshot(of key: VMKey, id: String) async throws {
        guard Naming.isValid(id) else { return }
        try FileIO.removeTree(snapshotFolder(id))
    }

    func snapshotFolder(_ id: String) -> String {
        configuration.root + "/" + Self.snapshotFolder + "/" + id
    }

    // MARK: Restore

    public func makeRestoreTarget(_ request: RestoreRequest) async throws -> any RestoreTarget {
        switch request {
        case .newVM(let newName, let original, _):
            guard !newName.isEmpty, !newName.contains("/"), !newName.hasPrefix(".") else {
                throw CoffreError(.invalidArgument, "'\(newName)' is not a valid VM name",
                                  workaround: "Use a name without '/' that does not start with a dot")
            }
            let key = VMKey(cloudService: original.cloudService, name: newName)
            let parent = try await parentFolder(for: original)
            let destination = parent + "/" + newName
            if try await entry(key) != nil || FileIO.hasEntry(destination) {
                throw CoffreError.restoreTargetExists(key, path: destination)
            }
            let staging = configuration.root + "/" + Self.restoreFolder + "/" + randomHex(6)
            try FileIO.makeDirectories(staging)
            var definition = VMDefinition(
                name: newName, cloudService: original.cloudService, region: original.region, osType: original.osType,
                powerState: .stopped, agentVersion: original.agentVersion, disks: original.disks.map(\.name))
            definition.unsupportedFeatures = []
            return NewVMTarget(fabric: self, key: key, staging: staging, destination: destination, definition: definition)
        case .replaceDisks(let key):
            let entry = try await requireEntry(key)
            guard entry.vm.powerState == .stopped else { throw CoffreError.vmMustBeStopped(key) }
            let staging = entry.folder + "/.coffre-restore-" + randomHex(6)
            try FileIO.makeDirectories(staging)
            return ReplaceDisksTarget(fabric: self, key: key, staging: staging, folder: entry.folder)
        }
    }

    /// Where a new VM beside `original` goes: next to the original's folder, else `<root>/<cloudService>`.
    private func parentFolder(for original: DiscoveredVM) async throws -> String {
        if let entry = try await entry(original.key) { return FileIO.directoryName(entry.folder) }
        return original.cloudService == configuration.name ? configuration.root : configuration.root + "/" + original.cloudService
    }
}

extension CoffreError {
    /// A restore as a new VM would overwrite an existing VM or folder.
    public static func restoreTargetExists(_ vm: VMKey, path: String) -> CoffreError {
        CoffreError(.vmAlreadyExists, "A VM \(vm) already exists (\(path)); a restore never overwrites a VM",
                    workaround: "Choose another name with --as-new-vm, or restore over its disks with --replace-disks --yes")
    }
}

/// The disks of a snapshot: copies in a folder of their own, or a stopped VM's own files.
struct LocalSnapshot: FabricSnapshot {
    var disks: [any BlockDevice]
    /// Nil when the disks are the VM's own files (nothing to delete).
    var folder: String?
    var cost: String
    var bytesCopied: Int64

    func delete() async throws {
        if let folder { try FileIO.removeTree(folder) }
    }
}

/// A new VM folder built in the fabric's staging area, then renamed into place in one step.
struct NewVMTarget: RestoreTarget {
    let fabric: LocalFabric
    let key: VMKey
    let staging: String
    let destination: String
    let definition: VMDefinition

    var directory: String { staging }

    func commit() async throws -> RestoredVM {
        try await runOnThread { _ in
            for disk in definition.disks {
                guard FileIO.hasEntry(staging + "/" + disk) else {
                    throw CoffreError(.restoreIncomplete, "The restore did not write the disk \(disk) of \(key)",
                                      workaround: "Retry the restore; if it fails again, verify the recovery point")
                }
            }
            try FileIO.writeFileAtomically(staging + "/" + LocalFabric.definitionFile, Array(try definition.encoded()))
            let parent = FileIO.directoryName(destination)
            try FileIO.makeDirectories(parent)
            guard !FileIO.hasEntry(destination) else { throw CoffreError.restoreTargetExists(key, path: destination) }
            try FileIO.rename(staging, to: destination)
            try FileIO.fsyncDirectory(parent)
        }
        return RestoredVM(key: key, files: definition.disks.map { destination + "/" + $0 })
    }

    func abort() async { try? FileIO.removeTree(staging) }
}

/// Restored disks written beside a stopped VM's disks, then renamed over them one by one.
struct ReplaceDisksTarget: RestoreTarget {
    let fabric: LocalFabric
    let key: VMKey
    let staging: String
    let folder: String

    var directory: String { staging }

    func commit() async throws -> RestoredVM {
        // The VM may have been started while the data was being written.
        let entry = try await fabric.requireEntry(key)
        guard entry.vm.powerState == .stopped else { throw CoffreError.vmMustBeStopped(key) }
        let disks = try await runOnThread { _ in
            let disks = FileIO.visibleEntries(staging)
            for disk in disks {
                try FileIO.fsyncFile(staging + "/" + disk)
                try FileIO.rename(staging + "/" + disk, to: folder + "/" + disk)
            }
            try FileIO.fsyncDirectory(folder)
            // A disk the VM no longer lists (removed after the point was taken) comes back listed.
            var definition = try VMDefinition.load(folder: folder)
            let missing = disks.filter { !definition.disks.contains($0) }
            if !missing.isEmpty {
                definition.disks += missing
                try FileIO.writeFileAtomically(folder + "/" + LocalFabric.definitionFile, Array(try definition.encoded()))
            }
            try FileIO.removeTree(staging)
            return disks
        }
        return RestoredVM(key: key, files: disks.map { folder + "/" + $0 })
    }

    func abort() async { try? FileIO.removeTree(staging) }
}
