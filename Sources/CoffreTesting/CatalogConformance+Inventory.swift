import CoffreCore
import Foundation
import Testing

/// Fabrics and VMs, on every catalog.
extension CatalogConformance {
    static func fabricsAreRecordedReplacedAndSortedByName(_ catalog: any Catalog) async throws {
        let zeta = FabricRecord(name: "zeta", kind: "local", region: "eu-west", address: "/srv/vms")
        let alpha = FabricRecord(name: "alpha", kind: "libvirt", region: "eu-west", address: "qemu+ssh://h/system")
        try await catalog.recordFabric(zeta)
        try await catalog.recordFabric(alpha)
        var moved = zeta
        moved.address = "/srv/other"
        try await catalog.recordFabric(moved)
        #expect(try await catalog.fabrics() == [alpha, moved])
    }

    static func discoveryAddsNewVMsPresentAndNotRegistered(_ catalog: any Catalog) async throws {
        let web = CatalogSample.vm("web")
        let changes = try await catalog.applyDiscovery(fabric: "f1", vms: [web, CatalogSample.vm("db")], at: CatalogSample.t0)
        #expect(changes == DiscoveryChanges(added: [web.key, CatalogSample.key("db")]))
        #expect(try await catalog.vm(web.key) == VMRecord(vm: web, fabric: "f1", firstSeen: CatalogSample.t0, lastSeen: CatalogSample.t0))
        #expect(try await catalog.vm(CatalogSample.key("nope")) == nil)
    }

    static func rediscoveryUpdatesTheVMAndKeepsItsRegistration(_ catalog: any Catalog) async throws {
        _ = try await catalog.applyDiscovery(fabric: "f1", vms: [CatalogSample.vm("web")], at: CatalogSample.t0)
        var registered = try #require(try await catalog.vm(CatalogSample.key("web")))
        registered.registration = .registered
        registered.registeredAt = CatalogSample.at(60.5)
        try await catalog.updateVM(registered)

        let changed = CatalogSample.vm("web", power: .stopped, diskSize: 20 << 30)
        let changes = try await catalog.applyDiscovery(fabric: "f1", vms: [changed], at: CatalogSample.at(3600.75))
        #expect(changes == DiscoveryChanges(updated: [changed.key]))
        var expected = registered
        expected.vm = changed
        expected.lastSeen = CatalogSample.at(3600.75)
        #expect(try await catalog.vm(changed.key) == expected)
    }

    static func vmMissingFromItsFabricVanishesAndComesBackPresent(_ catalog: any Catalog) async throws {
        let web = CatalogSample.vm("web"), db = CatalogSample.vm("db"), other = CatalogSample.vm("other", in: "cs2")
        _ = try await catalog.applyDiscovery(fabric: "f1", vms: [web, db], at: CatalogSample.t0)
        _ = try await catalog.applyDiscovery(fabric: "f2", vms: [other], at: CatalogSample.t0)
        var failed = try #require(try await catalog.vm(web.key))
        failed.registration = .failed
        failed.registrationError = ErrorInfo(code: .vmAgentNotFound, message: "no agent", workaround: "install it")
        try await catalog.updateVM(failed)

        let gone = try await catalog.applyDiscovery(fabric: "f1", vms: [db], at: CatalogSample.at(100))
        #expect(gone == DiscoveryChanges(updated: [db.key], vanished: [web.key]))
        var vanished = failed
        vanished.presence = .vanished
        #expect(try await catalog.vm(web.key) == vanished, "kept, last seen unchanged")
        #expect(try await catalog.vm(other.key)?.presence == .present, "another fabric's VMs are not touched")

        let again = try await catalog.applyDiscovery(fabric: "f1", vms: [db], at: CatalogSample.at(200))
        #expect(again.vanished.isEmpty, "a VM vanishes once")

        let back = try await catalog.applyDiscovery(fabric: "f1", vms: [web, db], at: CatalogSample.at(300))
        #expect(back == DiscoveryChanges(updated: [web.key, db.key]))
        var present = failed
        present.lastSeen = CatalogSample.at(300)
        #expect(try await catalog.vm(web.key) == present, "present again, registration kept")
    }

    static func vmsAreSortedByNameThenCloudService(_ catalog: any Catalog) async throws {
        let vms = [CatalogSample.vm("web", in: "b"), CatalogSample.vm("db", in: "z"), CatalogSample.vm("web", in: "a"), CatalogSample.vm("app", in: "m")]
        _ = try await catalog.applyDiscovery(fabric: "f1", vms: vms, at: CatalogSample.t0)
        #expect(try await catalog.vms().map(\.key.description) == ["m/app", "z/db", "a/web", "b/web"])
    }

    static func updateVMOfAnUnknownVMThrowsVMNotFound(_ catalog: any Catalog) async throws {
        let record = VMRecord(vm: CatalogSample.vm("ghost"), fabric: "f1", firstSeen: CatalogSample.t0, lastSeen: CatalogSample.t0)
        await expectError(.vmNotFound) { try await catalog.updateVM(record) }
        #expect(try await catalog.vms().isEmpty)
    }
}
