import CoffreCore
import Foundation
import Testing

/// Fabrics and VMs, on every catalog.
@Suite struct InventoryConformanceTests {
    @Test(arguments: Backend.allCases)
    func fabricsAreRecordedReplacedAndSortedByName(_ backend: Backend) async throws {
        try await backend.withCatalog { catalog throws in
            let zeta = FabricRecord(name: "zeta", kind: "local", region: "eu-west", address: "/srv/vms")
            let alpha = FabricRecord(name: "alpha", kind: "libvirt", region: "eu-west", address: "qemu+ssh://h/system")
            try await catalog.recordFabric(zeta)
            try await catalog.recordFabric(alpha)
            var moved = zeta
            moved.address = "/srv/other"
            try await catalog.recordFabric(moved)
            #expect(try await catalog.fabrics() == [alpha, moved])
        }
    }

    @Test(arguments: Backend.allCases)
    func discoveryAddsNewVMsPresentAndNotRegistered(_ backend: Backend) async throws {
        try await backend.withCatalog { catalog throws in
            let web = Sample.vm("web")
            let changes = try await catalog.applyDiscovery(fabric: "f1", vms: [web, Sample.vm("db")], at: Sample.t0)
            #expect(changes == DiscoveryChanges(added: [web.key, Sample.key("db")]))
            #expect(try await catalog.vm(web.key) == VMRecord(vm: web, fabric: "f1", firstSeen: Sample.t0, lastSeen: Sample.t0))
            #expect(try await catalog.vm(Sample.key("nope")) == nil)
        }
    }

    @Test(arguments: Backend.allCases)
    func rediscoveryUpdatesTheVMAndKeepsItsRegistration(_ backend: Backend) async throws {
        try await backend.withCatalog { catalog throws in
            _ = try await catalog.applyDiscovery(fabric: "f1", vms: [Sample.vm("web")], at: Sample.t0)
            var registered = try #require(try await catalog.vm(Sample.key("web")))
            registered.registration = .registered
            registered.registeredAt = Sample.at(60.5)
            try await catalog.updateVM(registered)

            let changed = Sample.vm("web", power: .stopped, diskSize: 20 << 30)
            let changes = try await catalog.applyDiscovery(fabric: "f1", vms: [changed], at: Sample.at(3600.75))
            #expect(changes == DiscoveryChanges(updated: [changed.key]))
            var expected = registered
            expected.vm = changed
            expected.lastSeen = Sample.at(3600.75)
            #expect(try await catalog.vm(changed.key) == expected)
        }
    }

    @Test(arguments: Backend.allCases)
    func vmMissingFromItsFabricVanishesAndComesBackPresent(_ backend: Backend) async throws {
        try await backend.withCatalog { catalog throws in
            let web = Sample.vm("web"), db = Sample.vm("db"), other = Sample.vm("other", in: "cs2")
            _ = try await catalog.applyDiscovery(fabric: "f1", vms: [web, db], at: Sample.t0)
            _ = try await catalog.applyDiscovery(fabric: "f2", vms: [other], at: Sample.t0)
            var failed = try #require(try await catalog.vm(web.key))
            failed.registration = .failed
            failed.registrationError = ErrorInfo(code: .vmAgentNotFound, message: "no agent", workaround: "install it")
            try await catalog.updateVM(failed)

            let gone = try await catalog.applyDiscovery(fabric: "f1", vms: [db], at: Sample.at(100))
            #expect(gone == DiscoveryChanges(updated: [db.key], vanished: [web.key]))
            var vanished = failed
            vanished.presence = .vanished
            #expect(try await catalog.vm(web.key) == vanished, "kept, last seen unchanged")
            #expect(try await catalog.vm(other.key)?.presence == .present, "another fabric's VMs are not touched")

            let again = try await catalog.applyDiscovery(fabric: "f1", vms: [db], at: Sample.at(200))
            #expect(again.vanished.isEmpty, "a VM vanishes once")

            let back = try await catalog.applyDiscovery(fabric: "f1", vms: [web, db], at: Sample.at(300))
            #expect(back == DiscoveryChanges(updated: [web.key, db.key]))
            var present = failed
            present.lastSeen = Sample.at(300)
            #expect(try await catalog.vm(web.key) == present, "present again, registration kept")
        }
    }

    @Test(arguments: Backend.allCases)
    func vmsAreSortedByNameThenCloudService(_ backend: Backend) async throws {
        try await backend.withCatalog { catalog throws in
            let vms = [Sample.vm("web", in: "b"), Sample.vm("db", in: "z"), Sample.vm("web", in: "a"), Sample.vm("app", in: "m")]
            _ = try await catalog.applyDiscovery(fabric: "f1", vms: vms, at: Sample.t0)
            #expect(try await catalog.vms().map(\.key.description) == ["m/app", "z/db", "a/web", "b/web"])
        }
    }

    @Test(arguments: Backend.allCases)
    func updateVMOfAnUnknownVMThrowsVMNotFound(_ backend: Backend) async throws {
        try await backend.withCatalog { catalog throws in
            let record = VMRecord(vm: Sample.vm("ghost"), fabric: "f1", firstSeen: Sample.t0, lastSeen: Sample.t0)
            await expectError(.vmNotFound) { try await catalog.updateVM(record) }
            #expect(try await catalog.vms().isEmpty)
        }
    }
}
