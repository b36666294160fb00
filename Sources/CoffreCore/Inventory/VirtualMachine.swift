public import Foundation

/// Whether a VM runs, as its fabric reports it.
public enum PowerState: String, Codable, Sendable, CaseIterable {
    case running, stopped, paused, unknown
}

/// One disk of a VM as discovery sees it.
public struct VirtualDisk: Codable, Sendable, Equatable, Hashable {
    /// The disk's name, unique inside the VM and valid for `Naming` (it names the disk in points).
    public var name: String
    public var size: Int64
    /// The OS disk is not counted against the data-disk limit.
    public var isOSDisk: Bool

    public init(name: String, size: Int64, isOSDisk: Bool) {
        self.name = name
        self.size = size
        self.isOSDisk = isOSDisk
    }
}

/// How a vault names a VM: its cloud service (libvirt host or local group) and its name.
///
/// Two VMs may share a name; never a name *and* a cloud service (R3). A VM deleted and then
/// restored under the same key is the same VM to the vault and gets its points back (K5).
public struct VMKey: Hashable, Codable, Sendable, Comparable, CustomStringConvertible {
    public var cloudService: String
    public var name: String

    public init(cloudService: String, name: String) {
        self.cloudService = cloudService
        self.name = name
    }

    /// Parses `cloudService/name`; a bare `name` gives a key with an empty cloud service,
    /// to be resolved against the catalog.
    public init(parsing text: String) {
        if let slash = text.lastIndex(of: "/") {
            self.init(cloudService: String(text[..<slash]), name: String(text[text.index(after: slash)...]))
        } else {
            self.init(cloudService: "", name: text)
        }
    }

    public var description: String { "\(cloudService)/\(name)" }

    public static func < (lhs: VMKey, rhs: VMKey) -> Bool {
        (lhs.name, lhs.cloudService) < (rhs.name, rhs.cloudService)
    }

    public init(from decoder: any Decoder) throws {
        self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// A VM as a fabric reports it during discovery (D1).
public struct DiscoveredVM: Codable, Sendable, Equatable {
    public var name: String
    public var cloudService: String
    public var region: String
    /// `linux`, `windows`, or what the fabric knows.
    public var osType: String
    public var powerState: PowerState
    /// Version of the VM agent inside the guest (the component the extension plugs into);
    /// nil when there is none.
    public var agentVersion: String?
    /// Version of the Coffre extension (`coffre-agent`) when it is installed.
    public var extensionVersion: String?
    /// The OS disk first, then data disks.
    public var disks: [VirtualDisk]
    /// Configuration the vault cannot back up (e.g. shared disks), each said in words.
    public var unsupportedFeatures: [String]

    public init(
        name: String, cloudService: String, region: String, osType: String = "linux",
        powerState: PowerState = .running, agentVersion: String? = nil, extensionVersion: String? = nil,
        disks: [VirtualDisk], unsupportedFeatures: [String] = []
    ) {
        self.name = name
        self.cloudService = cloudService
        self.region = region
        self.osType = osType
        self.powerState = powerState
        self.agentVersion = agentVersion
        self.extensionVersion = extensionVersion
        self.disks = disks
        self.unsupportedFeatures = unsupportedFeatures
    }

    public var key: VMKey { VMKey(cloudService: cloudService, name: name) }
    public var dataDiskCount: Int { disks.filter { !$0.isOSDisk }.count }
}

/// Whether the VM was in its fabric's answer at the last discovery.
public enum Presence: String, Codable, Sendable {
    case present
    /// Discovery no longer finds it; kept, never silently dropped (D1).
    case vanished
}

/// Where a VM stands with the vault (R5).
public enum RegistrationState: String, Codable, Sendable {
    case notRegistered
    case registering
    case registered
    case failed
}

/// A VM as the catalog keeps it: what discovery saw plus what the vault did with it.
public struct VMRecord: Codable, Sendable, Equatable {
    public var vm: DiscoveredVM
    /// The fabric that reported it.
    public var fabric: String
    public var presence: Presence
    public var firstSeen: Date
    public var lastSeen: Date
    public var registration: RegistrationState
    /// Why the last registration failed.
    public var registrationError: ErrorInfo?
    public var registeredAt: Date?

    public init(
        vm: DiscoveredVM, fabric: String, presence: Presence = .present, firstSeen: Date, lastSeen: Date,
        registration: RegistrationState = .notRegistered, registrationError: ErrorInfo? = nil,
        registeredAt: Date? = nil
    ) {
        self.vm = vm
        self.fabric = fabric
        self.presence = presence
        self.firstSeen = firstSeen
        self.lastSeen = lastSeen
        self.registration = registration
        self.registrationError = registrationError
        self.registeredAt = registeredAt
    }

    public var key: VMKey { vm.key }
}

/// An error as recorded in the catalog: what a job or registration failed with.
public struct ErrorInfo: Codable, Sendable, Equatable, Error, CustomStringConvertible {
    public var code: CoffreError.Code
    public var message: String
    public var workaround: String?

    public init(code: CoffreError.Code, message: String, workaround: String? = nil) {
        self.code = code
        self.message = message
        self.workaround = workaround
    }

    public init(_ error: CoffreError) {
        self.init(code: error.code, message: error.message, workaround: error.workaround)
    }

    public var error: CoffreError { CoffreError(code, message, workaround: workaround) }
    public var description: String { error.description }
}
