#if Libvirt
public import CoffreCore
import CoffreSystem
import Foundation

/// Discovery on one libvirt host: every domain, running or not, persistent or transient, as
/// a `DiscoveredVM` (D1).
public struct LibvirtDiscovery: Sendable {
    public struct Configuration: Sendable {
        /// The region the host belongs to.
        public var region: String
        /// The cloud service VMs of this host belong to; nil means the host name libvirt reports.
        public var cloudService: String?
        /// How long a running domain's guest agent may take to answer `guest-ping` before the
        /// VM counts as having no agent.
        public var agentProbeTimeoutSeconds: Int32 = 2
        /// Where the installed extension records its version inside the guest.
        public var extensionVersionPath = "/var/lib/coffre/extension-version"
        /// How many domains are described at once (each holds a thread while it waits).
        public var concurrency = 8

        public init(region: String = "local", cloudService: String? = nil) {
            self.region = region
            self.cloudService = cloudService
        }
    }

    public let connection: LibvirtConnection
    public var configuration: Configuration

    public init(connection: LibvirtConnection, configuration: Configuration = .init()) {
        self.connection = connection
        self.configuration = configuration
    }

    /// The cloud service of this host's VMs.
    public func cloudService() async throws -> String {
        if let cloudService = configuration.cloudService { return cloudService }
        return try await connection.hostname()
    }

    /// Every domain of the host, by name. A domain that cannot be described is still
    /// reported, with the problem as an unsupported feature, so that it does not silently vanish.
    /// - Throws: when the host cannot be reached or its domains not listed.
    public func discover() async throws -> [DiscoveredVM] {
        let service = try await cloudService()
        let domains = try await connection.domains()
        return await withTaskGroup(of: DiscoveredVM.self) { group in
            var found: [DiscoveredVM] = []
            var next = domains.makeIterator()
            func addNext() -> Bool {
                guard let domain = next.next() else { return false }
                group.addTask { await self.discovered(domain, cloudService: service) }
                return true
            }
            for _ in 0..<max(1, configuration.concurrency) where addNext() {}
            while let vm = await group.next() {
                found.append(vm)
                _ = addNext()
            }
            return found.sorted { $0.name < $1.name }
        }
    }

    /// The domain named `name` as discovery would report it, or nil when the host has none.
    public func vm(named name: String) async throws -> DiscoveredVM? {
        guard let domain = try await connection.domain(named: name) else { return nil }
        return await discovered(domain, cloudService: try await cloudService())
    }

    /// One domain as a `DiscoveredVM`; the agent is asked only when QEMU runs and the domain
    /// has an agent channel.
    func discovered(_ domain: LibvirtDomain, cloudService: String) async -> DiscoveredVM {
        let configuration = configuration
        do {
            return try await runOnThread { _ in
                let description = try domain.describeNow()
                let xml = try DomainXML(description.xml)
                var vm = Self.makeVM(description, unsupportedDisks: xml.unsupportedDisks,
                                     cloudService: cloudService, region: configuration.region)
                if description.state.isActive, description.hasGuestAgentChannel,
                   (try? domain.agentCall("guest-ping", timeoutSeconds: configuration.agentProbeTimeoutSeconds)) != nil {
                    vm.agentVersion = (try? domain.guestInfoNow())?.version
                    if let os = try? domain.guestOSInfoNow() { vm.osType = os.osType }
                    vm.extensionVersion = (try? domain.readFileNow(path: configuration.extensionVersionPath, limit: 4096))
                        .map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
                        .flatMap { $0.isEmpty ? nil : $0 }
                }
                return vm
            }
        } catch {
            let reason = (error as? CoffreError)?.message ?? "\(error)"
            return DiscoveredVM(name: domain.name, cloudService: cloudService, region: configuration.region,
                                powerState: .unknown, disks: [], unsupportedFeatures: [reason])
        }
    }

    /// What the definition alone says; the agent's answers are added by the caller.
    static func makeVM(
        _ description: DomainDescription, unsupportedDisks: [String], cloudService: String, region: String
    ) -> DiscoveredVM {
        var unsupported = unsupportedDisks
        if !description.isPersistent {
            unsupported.append("the domain is transient: its checkpoints vanish when it stops; define it with `virsh define`")
        }
        let disks = description.disks.enumerated().map { index, disk in
            if disk.capacity == nil {
                unsupported.append("the size of disk \(disk.target) (\(disk.source ?? "no source")) cannot be read")
            }
            if disk.isShareable { unsupported.append("the disk \(disk.target) is shared with other VMs") }
            if disk.isTransient { unsupported.append("the disk \(disk.target) is transient: its changes are dropped at shutdown") }
            if !Naming.isValid(disk.target) { unsupported.append("the disk name \(disk.target) is not valid in a vault") }
            return VirtualDisk(name: disk.target, size: disk.capacity ?? 0, isOSDisk: index == 0)
        }
        let osType = description.osinfoID?.contains("microsoft.com/win") == true ? "windows" : "linux"
        return DiscoveredVM(
            name: description.name, cloudService: cloudService, region: region, osType: osType,
            powerState: description.state.powerState, disks: disks, unsupportedFeatures: unsupported)
    }
}
#endif
