import CoffreCore
import CoffreEngine
import CoffreTesting
import Foundation
import Testing

/// SPEC section 2: registration.
@Suite struct RegistrationTests {
    @Test func R1_registeringInstallsTheExtensionAndAssociatesTheVM() async throws {
        let h = try await Harness()
        let key = try h.addVM("web01")
        try await h.discover()
        let result = await h.engine.register(["web01"])
        let job = try await h.succeed(try #require(result.jobs.first))
        #expect(job.type == .register)
        #expect(job.details["extensionVersion"] == "1.0.0")
        #expect(h.fabric.events.contains("install \(key)"))
        let record = try #require(try await h.catalog.vm(key))
        #expect(record.registration == .registered)
        #expect(record.registeredAt == h.clock.now())
        // Normally done once: a second registration is refused before any job.
        let again = await h.engine.register(["web01"])
        #expect(again.jobs.isEmpty)
        #expect(again.errors.first?.error == .alreadyRegistered(key))
    }

    @Test func R2_bulkRegistrationCreatesOneJobPerVM() async throws {
        let h = try await Harness()
        for name in ["a", "b", "c"] { try h.addVM(name) }
        try await h.discover()
        let result = await h.engine.register(["a", "b", "c"])
        #expect(result.jobs.count == 3)
        #expect(Set(result.jobs.compactMap(\.vm?.name)) == ["a", "b", "c"])
        for job in result.jobs { try await h.succeed(job) }
        #expect(try await h.engine.jobs(JobFilter(type: .register)).count == 3)
    }

    @Test func R3_onlyUnregisteredVMsOfTheVaultsRegionAreOfferedAndTwinsAreToldApartByCloudService() async throws {
        let h = try await Harness()
        try h.addVM("web", cloudService: "prod")
        try h.addVM("web", cloudService: "test")
        try h.addVM("far", region: "us-east")
        try h.addVM("done")
        try await h.discover()
        try await h.succeed(try #require(await h.engine.register(["done"]).jobs.first))
        let offered = try await h.engine.vms(unregistered: true).map(\.key.description)
        #expect(offered.sorted() == ["prod/web", "test/web"])
        // A bare name is ambiguous; cloudService/name is not.
        let ambiguous = await h.engine.register(["web"])
        #expect(ambiguous.errors.first?.error.code == .ambiguousVMName)
        let far = await h.engine.register(["far"])
        #expect(far.errors.first?.error == .vmNotInVaultRegion(VMKey(cloudService: "prod", name: "far"), region: "us-east", vaultRegion: Harness.region))
        try await h.succeed(try #require(await h.engine.register(["test/web"]).jobs.first))
        #expect(try await h.catalog.vm(VMKey(cloudService: "test", name: "web"))?.registration == .registered)
        #expect(try await h.catalog.vm(VMKey(cloudService: "prod", name: "web"))?.registration == .notRegistered)
    }

    /// Registers `name` and returns the failed job's error.
    private func failedRegistration(_ h: Harness, _ name: String) async throws -> ErrorInfo? {
        let result = await h.engine.register([name])
        let job = try await h.finish(try #require(result.jobs.first))
        #expect(job.status == .failed)
        let record = try await h.engine.resolveVM(name)
        #expect(record.registration == .failed)
        #expect(record.registrationError == job.error)
        return job.error
    }

    @Test func R4_vmNotRunning() async throws {
        let h = try await Harness()
        let key = try h.addVM("off", power: "stopped")
        try await h.discover()
        expectError(try await failedRegistration(h, "off"), .vmNotRunning(key))
        let error = CoffreError.vmNotRunning(key)
        #expect(error.message.contains("requires the VM to be running"))
        #expect(error.workaround == "Start the VM and, once it is running, retry the registration")
    }

    @Test func R4_tooManyDataDisksWithAConfigurableLimit() async throws {
        let h = try await Harness { $0.maxDataDisks = 2 }
        let key = try h.addVM("big", disks: [1 << 20, 1 << 20, 1 << 20, 1 << 20])
        try h.addVM("fits", disks: [1 << 20, 1 << 20, 1 << 20])
        try await h.discover()
        expectError(try await failedRegistration(h, "big"), .tooManyDataDisks(key, count: 3, limit: 2))
        try await h.succeed(try #require(await h.engine.register(["fits"]).jobs.first))
        #expect(Engine.Configuration(region: "x").maxDataDisks == 16)
    }

    @Test func R4_unsupportedConfiguration() async throws {
        let h = try await Harness()
        let key = try h.addVM("odd", unsupported: ["shared disk data1.img"])
        try await h.discover()
        expectError(try await failedRegistration(h, "odd"), .unsupportedConfiguration(key, features: ["shared disk data1.img"]))
    }

    @Test func R4_vmAgentMissingOrTooOld() async throws {
        let h = try await Harness { $0.minimumAgentVersion = "2.6" }
        let missing = try h.addVM("bare", agent: nil)
        let old = try h.addVM("old", agent: "2.5.9")
        try h.addVM("new", agent: "2.10")
        try await h.discover()
        expectError(try await failedRegistration(h, "bare"), .vmAgentNotFound(missing, minimum: "2.6"))
        expectError(try await failedRegistration(h, "old"), .vmAgentOutdated(old, version: "2.5.9", minimum: "2.6"))
        try await h.succeed(try #require(await h.engine.register(["new"]).jobs.first))
    }

    @Test func R4_installTimeout() async throws {
        let h = try await Harness { $0.installTimeout = .milliseconds(200) }
        let key = try h.addVM("slow")
        h.fabric.set { $0.installDelay = .seconds(30) }
        try await h.discover()
        let error = try await failedRegistration(h, "slow")
        expectError(error, .extensionInstallTimeout(key, seconds: 0.2))
        #expect(error?.workaround == "Check that the VM's operating system version is supported")
    }

    @Test func R4_anotherOperationInProgress() async throws {
        let h = try await Harness()
        let key = try h.addVM("busy")
        h.fabric.set { $0.installDelay = .seconds(30) }
        try await h.discover()
        let first = try #require(await h.engine.register(["busy"]).jobs.first)
        let second = await h.engine.register(["busy"])
        #expect(second.jobs.isEmpty)
        #expect(second.errors.first?.error == .anotherOperationInProgress(key, job: first.id))
        try await h.engine.cancel(jobID: first.id)
        #expect(try await h.finish(first).status == .cancelled)
    }

    @Test func R5_theItemShowsItsRegistrationStateDuringAndAfterTheJob() async throws {
        let h = try await Harness()
        let key = try h.addVM("web01")
        h.fabric.set { $0.installDelay = .milliseconds(300) }
        try await h.discover()
        #expect(try await h.catalog.vm(key)?.registration == .notRegistered)
        let job = try #require(await h.engine.register(["web01"]).jobs.first)
        try await h.eventually("registering") { try await h.catalog.vm(key)?.registration == .registering }
        try await h.succeed(job)
        #expect(try await h.catalog.vm(key)?.registration == .registered)
        #expect(try await h.catalog.vm(key)?.registrationError == nil)
    }
}
