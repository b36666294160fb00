#if Libvirt
import CoffreCore
import Foundation
import Testing
@testable import CoffreLibvirt

/// Discovery against the real libvirtd of `scripts/libvirt-harness up`.
@Suite(.serialized, .enabled(if: TestHost.live, "needs `scripts/libvirt-harness up`"))
struct DiscoveryTests {
    @Test func runningGuestWithTwoQcow2DisksAndAnAgent() async throws {
        let connection = try await TestHost.connect()
        let host = try await connection.hostname()
        let discovery = LibvirtDiscovery(connection: connection, configuration: .init(region: "lab"))
        let vms = try await discovery.discover()
        let tiny = try #require(vms.first { $0.name == TestHost.runningDomain })
        #expect(tiny.cloudService == host)
        #expect(tiny.region == "lab")
        #expect(tiny.powerState == .running)
        #expect(tiny.disks == [VirtualDisk(name: "vda", size: 64 << 20, isOSDisk: true),
                               VirtualDisk(name: "vdb", size: 64 << 20, isOSDisk: false)])
        #expect(tiny.unsupportedFeatures == [])
        let agent = try #require(tiny.agentVersion)
        #expect(agent.hasPrefix("7."))
        #expect(tiny.osType == "linux")

        let description = try await connection.requireDomain(named: TestHost.runningDomain).describe()
        #expect(description.state == .running)
        #expect(description.isPersistent)
        #expect(description.hasGuestAgentChannel)
        #expect(description.disks.map(\.format) == ["qcow2", "qcow2"])
        #expect(description.disks.allSatisfy { $0.source?.hasPrefix(TestHost.folder) == true })
        #expect(try await discovery.vm(named: TestHost.runningDomain) == tiny)
    }

    @Test func definedButShutOffGuest() async throws {
        let connection = try await TestHost.connect()
        let discovery = LibvirtDiscovery(connection: connection, configuration: .init(cloudService: "lab-host"))
        let stopped = try #require(try await discovery.discover().first { $0.name == TestHost.stoppedDomain })
        #expect(stopped.powerState == .stopped)
        #expect(stopped.cloudService == "lab-host")
        #expect(stopped.agentVersion == nil)
        // Sizes of a stopped domain: a qcow2 header and a raw file's length.
        #expect(stopped.disks == [VirtualDisk(name: "vda", size: 32 << 20, isOSDisk: true),
                                  VirtualDisk(name: "vdb", size: 16 << 20, isOSDisk: false)])
        let description = try await connection.requireDomain(named: TestHost.stoppedDomain).describe()
        #expect(description.state == .shutOff)
        #expect(description.disks.map(\.format) == ["qcow2", "raw"])
    }

    @Test func agentOfAStoppedDomainIsAClearError() async throws {
        let domain = try await TestHost.connect().requireDomain(named: TestHost.stoppedDomain)
        let error = try await #require(throws: CoffreError.self) { try await domain.guestPing() }
        #expect([.vmNotRunning, .guestAgentUnavailable].contains(error.code), "\(error)")
    }

    @Test func unknownDomainIsNil() async throws {
        let connection = try await TestHost.connect()
        #expect(try await connection.domain(named: "no-such-domain-\(UUID().uuidString.prefix(8))") == nil)
        let error = try await #require(throws: CoffreError.self) { try await connection.requireDomain(named: "no-such-domain") }
        #expect(error.code == .vmNotFound)
    }

    @Test(arguments: ["qemu+unix:///system?socket=/nonexistent/libvirt-sock", "nonsense-scheme:///x"])
    func badURIIsFabricUnreachable(uri: String) async throws {
        let error = try await #require(throws: CoffreError.self) { try await LibvirtConnection.open(uri) }
        #expect(error.code == .fabricUnreachable)
        #expect(error.message.contains(uri))
        #expect(error.workaround?.contains("virsh -c") == true)
    }
}
#endif
