#if Libvirt
import CLibvirt
import CoffreCore
import CoffreSystem
import Foundation
import Synchronization

/// An open connection to a libvirt daemon (`qemu:///system`, `qemu+ssh://host/system`, …).
///
/// libvirt's API is thread-safe per connection but every call blocks, so each call runs on a
/// thread of its own (`runOnThread`), never on Swift's cooperative pool.
public final class LibvirtConnection: @unchecked Sendable {
    // @unchecked: `pointer` is a libvirt connection, which libvirt documents as usable from
    // several threads at once; `isClosed` guards the one state change (closing).

    /// The URI the connection was opened with.
    public let uri: String
    let pointer: virConnectPtr
    private let isClosed = Mutex(false)

    private init(uri: String, pointer: virConnectPtr) {
        self.uri = uri
        self.pointer = pointer
    }

    /// Opens a read-write connection.
    /// - Throws: `FabricUnreachable` when libvirtd cannot be reached at `uri`, `LibvirtMissing`
    ///   when this host has no libvirt library.
    public static func open(_ uri: String) async throws -> LibvirtConnection {
        try await runOnThread { _ in
            if let unavailable = LibvirtLibrary.unavailable { throw unavailable }
            guard let pointer = virConnectOpen(uri) else {
                throw CoffreError.libvirtUnreachable(uri, detail: takeLastError().message)
            }
            return LibvirtConnection(uri: uri, pointer: pointer)
        }
    }

    /// Closes the connection; later calls are undefined. Domain handles still alive keep
    /// libvirt's side of it open until they are released. **Not while a call is in flight.**
    public func close() {
        let wasClosed = isClosed.withLock { closed in
            defer { closed = true }
            return closed
        }
        if !wasClosed { virConnectClose(pointer) }
    }

    deinit { close() }

    /// Whether libvirtd is still at the other end (`virConnectIsAlive`: no round trip, false
    /// once the client saw the daemon go, e.g. restarted).
    public var isAlive: Bool { virConnectIsAlive(pointer) == 1 }

    /// The host's name as libvirt reports it (`virConnectGetHostname`); Coffre's cloud service.
    public func hostname() async throws -> String {
        try await runOnThread { _ in try self.hostnameNow() }
    }

    func hostnameNow() throws -> String {
        guard let name = virConnectGetHostname(pointer) else { throw lastLibvirtError("read the host name") }
        defer { free(name) }
        return String(cString: name)
    }

    /// libvirt's and the hypervisor's versions, as `major.minor.micro`.
    public func versions() async throws -> (libvirt: String, hypervisor: String) {
        try await runOnThread { _ in
            var library: UInt = 0
            var hypervisor: UInt = 0
            guard virConnectGetLibVersion(self.pointer, &library) == 0,
                  virConnectGetVersion(self.pointer, &hypervisor) == 0
            else { throw lastLibvirtError("read versions") }
            func dotted(_ v: UInt) -> String { "\(v / 1_000_000).\(v / 1000 % 1000).\(v % 1000)" }
            return (dotted(library), dotted(hypervisor))
        }
    }

    /// Every domain of the host: running or not, persistent or transient.
    public func domains() async throws -> [LibvirtDomain] {
        try await runOnThread { _ in try self.domainsNow() }
    }

    func domainsNow() throws -> [LibvirtDomain] {
        var list: UnsafeMutablePointer<virDomainPtr?>?
        let count = virConnectListAllDomains(pointer, &list, 0)
        guard count >= 0, let list else { throw lastLibvirtError("list domains") }
        defer { free(list) }
        var domains: [LibvirtDomain] = []
        for index in 0..<Int(count) {
            guard let domain = list[index] else { continue }
            domains.append(try LibvirtDomain(connection: self, taking: domain))
        }
        return domains.sorted { $0.name < $1.name }
    }

    /// The domain named `name`, or nil when the host has none.
    public func domain(named name: String) async throws -> LibvirtDomain? {
        try await runOnThread { _ in
            guard let pointer = virDomainLookupByName(self.pointer, name) else {
                let error = lastLibvirtError("look up domain \(name)", domain: name)
                if error.code == .vmNotFound { return nil }
                throw error
            }
            return try LibvirtDomain(connection: self, taking: pointer)
        }
    }

    /// Like `domain(named:)`, but a missing domain is an error (`VMNotFound`).
    public func requireDomain(named name: String) async throws -> LibvirtDomain {
        guard let domain = try await domain(named: name) else {
            throw CoffreError.domainNotFound(name, host: uri)
        }
        return domain
    }
}
#endif
