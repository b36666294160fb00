import CoffreCore
import CoffreEngine
import CoffreTesting
import Foundation
import Testing

/// SPEC section 1: discovery.
@Suite struct DiscoveryTests {
    @Test func D1_discoveryRecordsVMsAndMarksVanishedOnesWithoutDroppingThem() async throws {
        let h = try await Harness()
        try h.addVM("web01", cloudService: "prod", agent: "2.1", disks: [1 << 20, 2 << 20])
        try h.addVM("db01", cloudService: "prod", power: "stopped", agent: nil)
        try await h.discover()
        let web = try #require(try await h.catalog.vm(VMKey(cloudService: "prod", name: "web01")))
        #expect(web.vm.cloudService == "prod")
        #expect(web.vm.region == Harness.region)
        #expect(web.vm.osType == "linux")
        #expect(web.vm.powerState == .running)
        #expect(web.vm.agentVersion == "2.1")
        #expect(web.vm.disks.map(\.size) == [1 << 20, 2 << 20])
        #expect(web.vm.disks.map(\.isOSDisk) == [true, false])
        #expect(web.fabric == "fabric0")
        let db = try #require(try await h.catalog.vm(VMKey(cloudService: "prod", name: "db01")))
        #expect(db.vm.powerState == .stopped)
        #expect(db.vm.agentVersion == nil)

        // A VM added later appears only after the next discovery.
        try h.addVM("app01")
        #expect(try await h.catalog.vm(VMKey(cloudService: "prod", name: "app01")) == nil)
        try FileManager.default.removeItem(atPath: h.vmFolder(VMKey(cloudService: "prod", name: "db01")))
        try await h.discover()
        #expect(try await h.catalog.vm(VMKey(cloudService: "prod", name: "app01"))?.presence == .present)
        let gone = try #require(try await h.catalog.vm(VMKey(cloudService: "prod", name: "db01")))
        #expect(gone.presence == .vanished)
        #expect(try await h.engine.vms().count == 3)
    }

    @Test func D2_secondDiscoveryWhileOneRunsFailsWithTheSeedsError() async throws {
        let h = try await Harness()
        h.fabric.set { $0.discoverGate = true }
        let first = try await h.engine.discover()
        try await h.eventually("discovery started") { h.fabric.events.contains("discover") }
        await expectThrows(.discoveryInProgress()) { _ = try await h.engine.discover() }
        #expect(CoffreError.discoveryInProgress().workaround == nil)
        h.fabric.set { $0.discoverGate = false }
        try await h.succeed(first)
        // Once it ended, a new one may run.
        try await h.discover()
        #expect(try await h.engine.jobs(JobFilter(type: .discovery)).count == 2)
    }

    @Test func D3_unreachableFabricFailsNamingItAndKeepsTheOthersResults() async throws {
        let h = try await Harness(fabricCount: 2)
        try h.addVM("web01", fabric: 0)
        try h.addVM("web02", fabric: 1)
        h.fabrics[1].set { $0.unreachable = true }
        let job = try await h.finish(try await h.engine.discover())
        #expect(job.status == .failed)
        let error = try #require(job.error)
        #expect(error.code == .discoveryInternalError)
        #expect(error.message.contains("'fabric1'"))
        #expect(error.message.contains("Wait a few minutes and retry"))
        #expect(error.workaround == "Retry the discovery after 15 minutes")
        #expect(try await h.catalog.vm(VMKey(cloudService: "prod", name: "web01")) != nil)
        #expect(try await h.catalog.vm(VMKey(cloudService: "prod", name: "web02")) == nil)
        #expect(job.steps.map(\.status) == [.succeeded, .failed])
    }

    @Test func D4_discoveryIsAJobWithTimesStatusAndSteps() async throws {
        let h = try await Harness()
        try h.addVM("web01")
        let started = try await h.engine.discover()
        #expect(started.type == .discovery)
        h.clock.advance(by: 5)
        let job = try await h.succeed(started)
        #expect(job.startedAt < job.endedAt!)
        #expect(job.steps.first?.name == "Discover fabric fabric0")
        #expect(job.steps.first?.detail?.contains("1 VMs: 1 new") == true)
        #expect(try await h.engine.job(job.id) == job)
    }
}
