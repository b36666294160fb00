import CoffreCore
import Foundation

extension Engine {
    /// Registers VMs with the vault (R1–R5): one Register job per VM. VMs that cannot even
    /// start a job (unknown, already registered, of another region, busy) are reported in
    /// the result's errors; the others' checks and the extension install run in their jobs.
    public func register(_ names: [String]) async -> BulkResult {
        var result = BulkResult()
        for name in names {
            do {
                result.jobs.append(try await register(try await resolveVM(name)))
            } catch {
                result.errors.append((name, error as? CoffreError ?? CoffreError(.internalError, "\(error)")))
            }
        }
        return result
    }

    private func register(_ record: VMRecord) async throws -> Job {
        let key = record.key
        guard record.registration != .registered else { throw CoffreError.alreadyRegistered(key) }
        guard record.presence == .present else { throw CoffreError.vmVanished(key) }
        guard record.vm.region == configuration.region else {
            throw CoffreError.vmNotInVaultRegion(key, region: record.vm.region, vaultRegion: configuration.region)
        }
        let fabric = try fabric(named: record.fabric)
        return try await runner.launch(.register, vm: key, lock: Self.itemLock(key)) { job in
            try await self.setRegistration(key, .registering, error: nil)
            do {
                let vm = try await job.step("Check VM") {
                    guard let vm = try await fabric.vm(key) else {
                        throw CoffreError.vmNotFoundInFabric(key, fabric: fabric.name)
                    }
                    try self.checkRegistrable(vm)
                    return vm
                }
                let version = try await job.step("Install extension") {
                    try await withTimeout(self.configuration.installTimeout, error: {
                        .extensionInstallTimeout(key, seconds: self.configuration.installTimeout.inSeconds)
                    }) {
                        try await fabric.installExtension(on: key)
                    }
                }
                job.note("coffre-agent \(version) answers; VM agent \(vm.agentVersion ?? "?")")
                job.setDetail("extensionVersion", version)
                try await self.setRegistration(key, .registered, error: nil)
            } catch {
                let info = isCancellation(error) ? ErrorInfo(CoffreError.cancelled())
                    : ErrorInfo(error as? CoffreError ?? CoffreError(.internalError, "\(error)"))
                try? await self.setRegistration(key, .failed, error: info)
                throw error
            }
        }
    }

    /// The seed's registration checks, in the order a person would fix them (R4).
    func checkRegistrable(_ vm: DiscoveredVM) throws {
        guard vm.powerState == .running else { throw CoffreError.vmNotRunning(vm.key) }
        guard vm.dataDiskCount <= configuration.maxDataDisks else {
            throw CoffreError.tooManyDataDisks(vm.key, count: vm.dataDiskCount, limit: configuration.maxDataDisks)
        }
        guard vm.unsupportedFeatures.isEmpty else {
            throw CoffreError.unsupportedConfiguration(vm.key, features: vm.unsupportedFeatures)
        }
        guard let agent = vm.agentVersion else {
            throw CoffreError.vmAgentNotFound(vm.key, minimum: configuration.minimumAgentVersion)
        }
        if Version.isOlder(agent, than: configuration.minimumAgentVersion) {
            throw CoffreError.vmAgentOutdated(vm.key, version: agent, minimum: configuration.minimumAgentVersion)
        }
    }

    private func setRegistration(_ key: VMKey, _ state: RegistrationState, error: ErrorInfo?) async throws {
        guard var record = try await catalog.vm(key) else { throw CoffreError.vmNotFound(key.description) }
        record.registration = state
        record.registrationError = error
        if state == .registered { record.registeredAt = clock.now() }
        try await catalog.updateVM(record)
    }

    /// The lock every operation on one VM takes (B6).
    static func itemLock(_ key: VMKey) -> String { "vm:\(key)" }
}
