#if Libvirt
import CLibvirt
import CoffreCore
import CoffreSystem
import Foundation

/// A handle on one domain of a `LibvirtConnection`; released with the handle.
///
/// The handle stays valid while the domain is redefined, started or stopped; calls on an
/// undefined domain fail with `VMNotFound`.
public final class LibvirtDomain: @unchecked Sendable {
    // @unchecked: libvirt domain objects are reference-counted and thread-safe; the handle
    // itself never changes after init.

    /// The connection the handle came from (kept alive by the handle).
    public let connection: LibvirtConnection
    /// The domain's name at the time the handle was made.
    public let name: String
    /// The domain's UUID, lower-case with dashes.
    public let uuid: String
    let pointer: virDomainPtr

    /// Takes ownership of `pointer` (freed in `deinit`).
    init(connection: LibvirtConnection, taking pointer: virDomainPtr) throws {
        self.connection = connection
        self.pointer = pointer
        guard let name = virDomainGetName(pointer) else {
            virDomainFree(pointer)
            throw lastLibvirtError("read a domain's name")
        }
        self.name = String(cString: name)
        var buffer = [CChar](repeating: 0, count: Int(VIR_UUID_STRING_BUFLEN))
        guard virDomainGetUUIDString(pointer, &buffer) == 0 else {
            virDomainFree(pointer)
            throw lastLibvirtError("read the UUID of \(self.name)", domain: self.name)
        }
        self.uuid = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { virDomainFree(pointer) }

    /// Where the domain stands now.
    public func state() async throws -> DomainState {
        try await runOnThread { _ in try self.stateNow() }
    }

    func stateNow() throws -> DomainState {
        var state: Int32 = 0
        var reason: Int32 = 0
        guard virDomainGetState(pointer, &state, &reason, 0) == 0 else {
            throw lastLibvirtError("read the state of \(name)", domain: name)
        }
        return DomainState(libvirt: state)
    }

    /// Whether the domain has a persistent definition (transient domains vanish when they stop,
    /// and their checkpoints with them).
    public func isPersistent() async throws -> Bool {
        try await runOnThread { _ in try self.isPersistentNow() }
    }

    func isPersistentNow() throws -> Bool {
        let answer = virDomainIsPersistent(pointer)
        guard answer >= 0 else { throw lastLibvirtError("ask whether \(name) is persistent", domain: name) }
        return answer == 1
    }

    /// The domain's XML definition: the live one for a running domain.
    /// - Parameter inactive: the definition used at the next start instead.
    public func xml(inactive: Bool = false) async throws -> String {
        try await runOnThread { _ in try self.xmlNow(inactive: inactive) }
    }

    func xmlNow(inactive: Bool = false) throws -> String {
        let flags: UInt32 = inactive ? VIR_DOMAIN_XML_INACTIVE.rawValue : 0
        guard let text = virDomainGetXMLDesc(pointer, flags) else {
            throw lastLibvirtError("read the XML of \(name)", domain: name)
        }
        defer { free(text) }
        return String(cString: text)
    }

    /// Name, state, persistence and disks (with their sizes) in one go.
    public func describe() async throws -> DomainDescription {
        try await runOnThread { _ in try self.describeNow() }
    }

    func describeNow() throws -> DomainDescription {
        let state = try stateNow()
        let xml = try xmlNow()
        var definition = try DomainXML(xml)
        for index in definition.disks.indices {
            definition.disks[index].capacity = capacity(of: definition.disks[index])
        }
        return DomainDescription(
            name: name, uuid: uuid, state: state, isPersistent: try isPersistentNow(),
            disks: definition.disks, hasGuestAgentChannel: definition.hasGuestAgentChannel,
            osinfoID: definition.osinfoID, xml: xml)
    }

    /// The disk's virtual size: libvirt's answer (`virDomainGetBlockInfo`, which also works for
    /// many stopped domains), else the image's own header read on this host.
    func capacity(of disk: DomainDisk) -> Int64? {
        var info = virDomainBlockInfo()
        if virDomainGetBlockInfo(pointer, disk.target, &info, 0) == 0, info.capacity > 0 {
            return Int64(clamping: info.capacity)
        }
        _ = takeLastError()
        guard let source = disk.source, disk.type == "file" || disk.type == "block" else { return nil }
        return DiskImage.virtualSize(path: source, format: disk.format)
    }

    /// Starts a defined domain.
    public func start() async throws {
        try await runOnThread { _ in
            guard virDomainCreate(self.pointer) == 0 else { throw lastLibvirtError("start \(self.name)", domain: self.name) }
        }
    }

    /// Stops the domain at once, like pulling the plug (`virsh destroy`); the definition stays.
    public func destroy() async throws {
        try await runOnThread { _ in
            guard virDomainDestroy(self.pointer) == 0 else { throw lastLibvirtError("stop \(self.name)", domain: self.name) }
        }
    }
}
#endif
