public import CoffreCore
import Synchronization

/// A disk exported over NBD (libvirt's pull-mode backup, qemu-nbd), read through a small pool
/// of connections so that several threads read at once.
///
/// Connections open lazily, up to `maxConnections`, each used by one thread at a time. A
/// connection that fails is dropped and reopened by the next read. When the server refuses an
/// extra connection the pool keeps the ones it has.
public final class NBDDevice: BlockDevice {
    /// What `dataExtents(in:)` reports.
    public enum ExtentSource: Sendable, Hashable {
        /// For full backups: everything `base:allocation` does not mark `NBD_STATE_ZERO`.
        case allocation
        /// For incrementals: the extents the dirty bitmap marks dirty (context
        /// `qemu:dirty-bitmap:NAME`; libvirt names it `backup-<disk target>`).
        ///
        /// **Ranges outside the dirty extents are unchanged, not zero**: the consumer must take
        /// them from the previous recovery point. `base:allocation` is negotiated too (see `maps(in:)`).
        case dirtyBitmap(String)
        /// No block status: the whole disk is data (for servers without NBD_CMD_BLOCK_STATUS).
        case everything
    }

    /// Where the export is and how to read it.
    public struct Configuration: Sendable {
        /// The server.
        public var endpoint: NBDEndpoint
        /// The export's name (libvirt: the disk target, e.g. `vda`, unless `exportname` says otherwise).
        public var export: String
        /// The disk's name inside a recovery point; the export's name when nil.
        public var name: String?
        /// What `dataExtents(in:)` reports.
        public var extents: ExtentSource
        /// The most connections opened to the server (at least 1).
        public var maxConnections: Int
        /// Timeouts and request limits of each connection.
        public var connection: NBDConnection.Configuration

        public init(
            endpoint: NBDEndpoint, export: String, name: String? = nil, extents: ExtentSource = .allocation,
            maxConnections: Int = 4, connection: NBDConnection.Configuration = .init()
        ) {
            self.endpoint = endpoint
            self.export = export
            self.name = name
            self.extents = extents
            self.maxConnections = maxConnections
            self.connection = connection
        }
    }

    /// Both block-status maps of a range.
    public struct Maps: Sendable, Hashable {
        /// `base:allocation` extents (nil with `.everything`).
        public var allocation: [NBDExtent]?
        /// Dirty-bitmap extents (nil unless the source is `.dirtyBitmap`).
        public var dirty: [NBDExtent]?
    }

    public let name: String
    public let size: Int64
    public let configuration: Configuration
    /// The meta contexts every connection negotiates.
    public let metaContexts: [String]

    /// A connection only ever touched inside its slot's mutex, hence the unchecked `Sendable`.
    private struct Held: @unchecked Sendable {
        var connection: NBDConnection?
    }

    private final class Slot: Sendable {
        let connection: Mutex<Held>
        init(_ connection: NBDConnection?) { self.connection = Mutex(Held(connection: connection)) }
    }

    private let slots: [Slot]
    private let nextSlot = Atomic<Int>(0)
    private let usableSlots: Atomic<Int>

    /// Opens the first connection, which checks the export and its meta contexts and learns
    /// the size; the others open when concurrent reads need them.
    public init(configuration: Configuration) throws {
        self.configuration = configuration
        self.name = configuration.name ?? configuration.export
        switch configuration.extents {
        case .allocation: metaContexts = [NBDMetaContext.allocation]
        case .dirtyBitmap(let bitmap): metaContexts = [NBDMetaContext.allocation, NBDMetaContext.dirtyBitmap(bitmap)]
        case .everything: metaContexts = []
        }
        let first = try NBDConnection.connect(
            to: configuration.endpoint, export: configuration.export, metaContexts: metaContexts,
            configuration: configuration.connection)
        size = first.size
        let count = max(1, configuration.maxConnections)
        slots = [Slot(first)] + (1..<count).map { _ in Slot(nil) }
        usableSlots = Atomic(count)
    }

    /// Opens a device; see `Configuration`.
    public convenience init(
        endpoint: NBDEndpoint, export: String, name: String? = nil, extents: ExtentSource = .allocation,
        maxConnections: Int = 4, connection: NBDConnection.Configuration = .init()
    ) throws {
        try self.init(configuration: Configuration(
            endpoint: endpoint, export: export, name: name, extents: extents,
            maxConnections: maxConnections, connection: connection))
    }

    /// Closes every connection (NBD_CMD_DISC); waits for reads in progress. Reads after this reconnect.
    public func close() {
        for slot in slots {
            slot.connection.withLock { held in
                held.connection?.close()
                held.connection = nil
            }
        }
    }

    /// How many connections are open now.
    public var openConnections: Int {
        slots.reduce(0) { count, slot in count + slot.connection.withLock { $0.connection?.isOpen == true ? 1 : 0 } }
    }

    // MARK: BlockDevice

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws {
        try withConnection { try $0.read(into: buffer, at: offset) }
    }

    /// The ranges the chosen `ExtentSource` marks as data (allocation) or dirty (bitmap),
    /// adjacent ranges merged.
    public func dataExtents(in range: Range<Int64>) throws -> [Range<Int64>] {
        let wanted = range.clamped(to: 0..<size)
        switch configuration.extents {
        case .everything:
            return wanted.isEmpty ? [] : [wanted]
        case .allocation:
            return try allocatedExtents(in: wanted)
        case .dirtyBitmap:
            return try changedExtents(in: wanted)
        }
    }

    // MARK: Maps

    /// The ranges that may hold data: `base:allocation` extents without `NBD_STATE_ZERO`.
    /// A hole without that flag is data too: the protocol does not promise that it reads as zeros.
    public func allocatedExtents(in range: Range<Int64>) throws -> [Range<Int64>] {
        guard metaContexts.contains(NBDMetaContext.allocation) else { return range.isEmpty ? [] : [range] }
        return try extents(context: NBDMetaContext.allocation, in: range).ranges { !$0.isZero }
    }

    /// The ranges the dirty bitmap marks as written since it was enabled.
    ///
    /// - Throws: `NBDInvalidRequest` unless the source is `.dirtyBitmap`.
    public func changedExtents(in range: Range<Int64>) throws -> [Range<Int64>] {
        guard case .dirtyBitmap(let bitmap) = configuration.extents else {
            throw CoffreError.nbdInvalidRequest(configuration.export, "no dirty bitmap was chosen for this device")
        }
        return try extents(context: NBDMetaContext.dirtyBitmap(bitmap), in: range).ranges { $0.isDirty }
    }

    /// The raw extents of one negotiated meta context.
    public func extents(context: String, in range: Range<Int64>) throws -> [NBDExtent] {
        try withConnection { try $0.blockStatus(context: context, range: range) }
    }

    /// The allocation and dirty maps of `range`, from the same block-status requests.
    public func maps(in range: Range<Int64>) throws -> Maps {
        guard !metaContexts.isEmpty else { return Maps(allocation: nil, dirty: nil) }
        let all = try withConnection { try $0.blockStatus(contexts: metaContexts, range: range) }
        var maps = Maps(allocation: all[NBDMetaContext.allocation], dirty: nil)
        if case .dirtyBitmap(let bitmap) = configuration.extents {
            maps.dirty = all[NBDMetaContext.dirtyBitmap(bitmap)]
        }
        return maps
    }

    // MARK: Pool

    /// Runs `body` on a free connection, else waits for one.
    private func withConnection<Result: Sendable>(_ body: (NBDConnection) throws -> Result) throws -> Result {
        let count = usableSlots.load(ordering: .relaxed)
        let first = (nextSlot.wrappingAdd(1, ordering: .relaxed).oldValue & Int.max) % count
        for step in 0..<count {
            let index = (first + step) % count
            if let result = try slots[index].connection.withLockIfAvailable({ try use(&$0, slot: index, body) }) {
                return result
            }
        }
        return try slots[first].connection.withLock { try use(&$0, slot: first, body) }
    }

    private func use<Result: Sendable>(
        _ held: inout Held, slot: Int, _ body: (NBDConnection) throws -> Result
    ) throws -> Result {
        if let open = held.connection, open.isOpen { return try body(open) }
        held.connection = nil
        let connection: NBDConnection
        do {
            connection = try NBDConnection.connect(
                to: configuration.endpoint, export: configuration.export, metaContexts: metaContexts,
                configuration: configuration.connection)
        } catch where slot > 0 {
            // The server refuses more clients (qemu-nbd allows one unless --shared=N): keep the
            // slots below this one. Slot 0 never takes this path, so lock order stays acyclic.
            var current = usableSlots.load(ordering: .relaxed)
            while current > slot {
                let (exchanged, original) = usableSlots.compareExchange(expected: current, desired: slot, ordering: .relaxed)
                if exchanged { break }
                current = original
            }
            return try slots[0].connection.withLock { try use(&$0, slot: 0, body) }
        }
        held.connection = connection
        return try body(connection)
    }
}
