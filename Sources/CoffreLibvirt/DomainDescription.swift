#if Libvirt
import CLibvirt
public import CoffreCore

/// A domain's state as libvirt reports it (`virDomainState`).
public enum DomainState: String, Sendable, Equatable {
    case running, blocked, paused, shuttingDown, shutOff, crashed, suspended, unknown

    init(libvirt state: Int32) {
        switch UInt32(bitPattern: state) {
        case VIR_DOMAIN_RUNNING.rawValue: self = .running
        case VIR_DOMAIN_BLOCKED.rawValue: self = .blocked
        case VIR_DOMAIN_PAUSED.rawValue: self = .paused
        case VIR_DOMAIN_SHUTDOWN.rawValue: self = .shuttingDown
        case VIR_DOMAIN_SHUTOFF.rawValue: self = .shutOff
        case VIR_DOMAIN_CRASHED.rawValue: self = .crashed
        case VIR_DOMAIN_PMSUSPENDED.rawValue: self = .suspended
        default: self = .unknown
        }
    }

    /// Coffre's view: a guest whose CPUs may run is running; a shut-off or crashed one is stopped.
    public var powerState: PowerState {
        switch self {
        case .running, .blocked, .shuttingDown: .running
        case .paused, .suspended: .paused
        case .shutOff, .crashed: .stopped
        case .unknown: .unknown
        }
    }

    /// Whether QEMU runs for the domain (the guest agent can only answer then).
    public var isActive: Bool { powerState == .running || powerState == .paused }
}

/// One `<disk device='disk'>` of a domain definition.
public struct DomainDisk: Sendable, Equatable {
    /// The guest-side name (`vda`, `sdb`): unique in the domain, Coffre's disk name.
    public var target: String
    /// `file`, `block`, `network` or `volume`.
    public var type: String
    /// The host-side path (`file`/`block`), or `protocol:name` for network disks.
    public var source: String?
    /// The image format from `<driver type=…>` (`qcow2`, `raw`), when given.
    public var format: String?
    /// Bus from `<target bus=…>` (`virtio`, `sata`, `scsi`).
    public var bus: String?
    public var isShareable: Bool
    public var isReadOnly: Bool
    /// `<transient/>`: changes are thrown away at shutdown.
    public var isTransient: Bool
    /// `<boot order=…>` when set.
    public var bootOrder: Int?
    /// Virtual size in bytes; nil when neither libvirt nor the image header told.
    public var capacity: Int64?

    public init(
        target: String, type: String, source: String?, format: String?, bus: String? = nil,
        isShareable: Bool = false, isReadOnly: Bool = false, isTransient: Bool = false,
        bootOrder: Int? = nil, capacity: Int64? = nil
    ) {
        self.target = target
        self.type = type
        self.source = source
        self.format = format
        self.bus = bus
        self.isShareable = isShareable
        self.isReadOnly = isReadOnly
        self.isTransient = isTransient
        self.bootOrder = bootOrder
        self.capacity = capacity
    }
}

/// What discovery needs to know about one domain, read in one go.
public struct DomainDescription: Sendable, Equatable {
    public var name: String
    public var uuid: String
    public var state: DomainState
    /// Transient domains lose their definition (and checkpoints) when they stop.
    public var isPersistent: Bool
    /// The OS disk first (lowest boot order, else document order), then the others.
    public var disks: [DomainDisk]
    /// Whether the definition has the `org.qemu.guest_agent.0` channel.
    public var hasGuestAgentChannel: Bool
    /// The libosinfo OS id from the domain's metadata (`http://microsoft.com/win/10`), if any.
    public var osinfoID: String?
    /// The XML the description was read from.
    public var xml: String
}
#endif
