#if Libvirt
import CoffreCore
import CoffreEngine
@testable import CoffreLibvirt
import CoffreSQLite
import CoffreStorage
import CoffreSystem
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// The seed-000 flow on a real libvirt host: a guest of its own (cloned from the harness's
/// tiny guest), the engine on SQLite and a vault folder, backups through libvirt's pull-mode
/// backup API with dirty bitmaps.
@Suite("libvirt fabric end to end", .serialized, .enabled(if: TestHost.live, "needs `scripts/libvirt-harness up`"))
struct FabricEndToEndTests {
    static let vmName = "coffre-e2e"

    /// A scratch folder, the guest, and an engine whose only fabric is the libvirt host.
    final class Setup: @unchecked Sendable {
        let folder: String
        let connection: LibvirtConnection
        let domain: LibvirtDomain
        let fabric: LibvirtFabric
        let engine: Engine
        let catalog: SQLiteCatalog
        let vault: Vault
        /// The guest's name; domains the test makes start with it.
        let vmName: String

        /// - Parameters:
        ///   - agent: push the static coffre-agent at registration (else qemu-guest-agent alone, faster).
        ///   - configure: changes to the fabric's configuration.
        init(vmName: String = FabricEndToEndTests.vmName, agent: Bool = true,
             configure: (inout LibvirtFabric.Configuration) -> Void = { _ in }) async throws {
            self.vmName = vmName
            folder = "/var/tmp/\(vmName)-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: folder + "/vm", withIntermediateDirectories: true)
            connection = try await TestHost.connect()
            try await Self.removeDomains(startingWith: vmName, connection)
            // The harness's tiny guest, cloned with fresh disks: vda empty, vdb ext4 (mounted on /mnt).
            try run("/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", folder + "/vm/vda.qcow2", "64M")
            try run("/usr/bin/truncate", "-s", "64M", folder + "/vm/vdb.raw")
            try run("/sbin/mkfs.ext4", "-q", "-F", folder + "/vm/vdb.raw")
            try run("/usr/bin/qemu-img", "convert", "-O", "qcow2", folder + "/vm/vdb.raw", folder + "/vm/vdb.qcow2")
            try FileManager.default.removeItem(atPath: folder + "/vm/vdb.raw")
            let template = try await TestHost.running().xml(inactive: true)
            let clone = try RestoreXML.newDomain(
                from: template, name: vmName,
                files: ["vda": folder + "/vm/vda.qcow2", "vdb": folder + "/vm/vdb.qcow2"], directory: folder + "/vm",
                format: "qcow2")
            // As many real definitions have it: a pty serial console logging to a file (virtlogd
            // holds it while the domain runs), next to the agent's Unix socket channel.
            domain = try await connection.define(try Self.withLoggedConsole(clone.xml, log: folder + "/vm/e2e.console.log"))
            try await domain.start()
            try await Self.waitForAgent(domain)

            var configuration = LibvirtFabric.Configuration(
                name: "kvm", uri: TestHost.uri, region: "local",
                scratchDirectory: folder + "/scratch", restoreDirectory: folder + "/restored")
            configuration.agentBinary = agent ? TestHost.staticAgent : nil
            configure(&configuration)
            fabric = LibvirtFabric(configuration: configuration)
            catalog = try SQLiteCatalog(path: folder + "/catalog.sqlite")
            vault = try Vault.create(at: folder + "/vault")
            // Pushing the 60 MB coffre-agent into a TCG guest took 78 s on a loaded machine:
            // the install limit leaves room for worse (the product's default is 120 s).
            var engineConfiguration = Engine.Configuration(region: "local")
            engineConfiguration.installTimeout = .seconds(600)
            engine = Engine(configuration: engineConfiguration, catalog: catalog,
                            store: VaultPointStore(vault), fabrics: [fabric], clock: SystemTimeSource(),
                            owner: ProcessIdentity.current, isOwnerAlive: ProcessIdentity.isAlive)
            try await engine.start()
        }

        func tearDown() async {
            try? await Self.removeDomains(startingWith: vmName, connection)
            try? FileManager.default.removeItem(atPath: folder)
        }

        /// Removes the test's domains: the guest and every copy of it.
        static func removeDomains(startingWith prefix: String, _ connection: LibvirtConnection) async throws {
            for domain in try await connection.domains() where domain.name.hasPrefix(prefix) {
                try await removeDomain(domain.name, connection)
            }
        }

        /// `xml` with its serial ports and consoles replaced by one pty serial port logging to `log`,
        /// and a network interface (user-mode: nothing to set up on the host), as real VMs have.
        static func withLoggedConsole(_ xml: String, log: String) throws -> String {
            let document = try XMLDocument(xmlString: xml)
            let devices = try #require(document.rootElement()?.elements(forName: "devices").first)
            for device in devices.elements(forName: "serial") + devices.elements(forName: "console") { device.detach() }
            devices.addChild(try XMLElement(xmlString: "<serial type='pty'><log file='\(log)' append='on'/><target port='0'/></serial>"))
            devices.addChild(try XMLElement(xmlString: "<interface type='user'><model type='virtio'/></interface>"))
            return document.xmlString
        }

        static func removeDomain(_ name: String, _ connection: LibvirtConnection) async throws {
            guard let domain = try await connection.domain(named: name) else { return }
            if try await domain.state().isActive { try await domain.destroy() }
            if try await domain.isPersistent() { try await domain.undefine() }
        }

        static func waitForAgent(_ domain: LibvirtDomain) async throws {
            for _ in 0..<300 {
                if (try? await domain.guestPing()) != nil { return }
                try await Task.sleep(for: .milliseconds(200))
            }
            throw TestFailure("GuestDidNotBoot: \(domain.name) did not answer guest-ping within 60 s")
        }

        /// Runs a shell command in the guest; fails the test when it fails.
        @discardableResult
        func guest(_ command: String) async throws -> String {
            let result = try await domain.guestShell(command)
            guard result.exitCode == 0 else { throw TestFailure("GuestCommandFailed: \(command): \(result.errorOutput)") }
            return result.output
        }

        /// Writes `count` MiB of random data at `offset` MiB of /dev/vda, then prints the disk's sha256.
        func writeAndHash(mib count: Int, at offset: Int) async throws -> String {
            let output = try await guest("dd if=/dev/urandom of=/dev/vda bs=1M count=\(count) seek=\(offset) conv=fsync 2>/dev/null; sync; sha256sum /dev/vda")
            return String(output.prefix(64))
        }

        /// Discovery, registration and protection under a nightly policy; the VM's key.
        func protect() async throws -> VMKey {
            let key = VMKey(cloudService: try await connection.hostname(), name: vmName)
            _ = try await engine.wait(for: try await engine.discover().id)
            let registration = try #require(await engine.register([key.description]).jobs.first)
            let registered = try await engine.wait(for: registration.id)
            guard registered.status == .succeeded else { throw TestFailure("RegisterFailed: \(registered.error?.description ?? "?")") }
            try await engine.createPolicy(Policy(name: "nightly", schedule: .daily(at: TimeOfDay(hour: 22, minute: 0)),
                                                 retention: Retention(days: 7)))
            for job in await engine.protect([key.description], policy: "nightly").jobs {
                let protected = try await engine.wait(for: job.id)
                guard protected.status == .succeeded else { throw TestFailure("ProtectFailed: \(protected.error?.description ?? "?")") }
            }
            return key
        }

        func backup() async throws -> (RecoveryPointRecord, Job) {
            let job = try await engine.wait(for: try await engine.backupNow(vmName).id)
            guard job.status == .succeeded, let id = job.details["point"], let point = try await catalog.point(id: id) else {
                throw TestFailure("BackupFailed: \(job.status.rawValue): \(job.error.map(\.description) ?? "?")")
            }
            return (point, job)
        }

        /// Restores a point to a folder; returns the folder.
        func restoreFolder(_ point: String) async throws -> String {
            let target = folder + "/restore-\(point)"
            let job = try await engine.wait(for: try await engine.restore(vmName, point: point, to: .folder(target)).id)
            guard job.status == .succeeded else { throw TestFailure("RestoreFailed: \(job.error?.description ?? "?")") }
            return target
        }

        /// The agent's script configuration in the guest (root-owned, 600; script 700).
        func configureScripts(preScript: String, continueOnFailure: Bool) async throws {
            try await guest("mkdir -p /etc/coffre /usr/local/sbin")
            try await domain.guestWriteFile(path: "/usr/local/sbin/coffre-pre.sh", data: Data("#!/bin/sh\n\(preScript)\n".utf8), mode: 0o700)
            try await domain.guestWriteFile(path: "/usr/local/sbin/coffre-post.sh", data: Data("#!/bin/sh\nexit 0\n".utf8), mode: 0o700)
            let config = """
                {"pluginName": "ScriptRunner", "preScriptLocation": "/usr/local/sbin/coffre-pre.sh", "postScriptLocation": "/usr/local/sbin/coffre-post.sh",
                 "preScriptParams": [], "postScriptParams": [], "preScriptNoOfRetries": 0, "postScriptNoOfRetries": 0,
                 "timeoutInSeconds": 30, "continueBackupOnFailure": \(continueOnFailure), "fsFreezeEnabled": true}
                """
            try await domain.guestWriteFile(path: "/etc/coffre/VMSnapshotScriptPluginConfig.json", data: Data(config.utf8), mode: 0o600)
            try await guest("chmod 700 /usr/local/sbin/coffre-pre.sh /usr/local/sbin/coffre-post.sh; chmod 600 /etc/coffre/VMSnapshotScriptPluginConfig.json")
        }

        /// Restores a point to a folder; returns the sha256 of each restored disk.
        func restoreHashes(_ point: String) async throws -> [String: String] {
            let target = try await restoreFolder(point)
            var hashes: [String: String] = [:]
            for disk in ["vda", "vdb"] { hashes[disk] = try String(run("/usr/bin/sha256sum", target + "/" + disk).prefix(64)) }
            return hashes
        }
    }

    @Test("discover → register (coffre-agent pushed) → protect → full → incremental reads only the written extents → restores match the guest → chain break → two restores as new VMs that boot beside the running original")
    func seedFlow() async throws {
        let s = try await Setup()
        defer { Task { await s.tearDown() } }
        let key = VMKey(cloudService: try await s.connection.hostname(), name: Self.vmName)

        // Discovery sees the domain with its disks and the guest agent.
        _ = try await s.engine.wait(for: try await s.engine.discover().id)
        let found = try await s.engine.resolveVM(key.description)
        #expect(found.vm.disks.map(\.name) == ["vda", "vdb"])
        #expect(found.vm.disks.map(\.size) == [64 << 20, 64 << 20])
        #expect(found.vm.agentVersion != nil)

        // Registration copies coffre-agent into the guest and runs it there.
        let registration = try #require(await s.engine.register([key.description]).jobs.first)
        let registered = try await s.engine.wait(for: registration.id)
        #expect(registered.status == .succeeded, "\(registered.error.map(\.description) ?? "")")
        if TestHost.staticAgent != nil {
            #expect(try await s.guest("/usr/local/bin/coffre-agent version").contains("\"agentVersion\""))
        }
        try await s.engine.createPolicy(Policy(name: "nightly", schedule: .daily(at: TimeOfDay(hour: 22, minute: 0)),
                                               retention: Retention(days: 7)))
        for job in await s.engine.protect([key.description], policy: "nightly").jobs { _ = try await s.engine.wait(for: job.id) }

        // Full backup, then the guest writes 1 MiB and the incremental reads about that much.
        let h0 = try await s.writeAndHash(mib: 4, at: 8)
        let (full, _) = try await s.backup()
        #expect(full.changes?.token != nil && full.changes?.resyncReason == nil)
        #expect(full.consistency >= .fileSystemConsistent)
        let h1 = try await s.writeAndHash(mib: 1, at: 20)
        let (incremental, incrementalJob) = try await s.backup()
        #expect(incremental.changes?.changedOnlyDisks == 2, "\(String(describing: incremental.changes))")
        #expect(incremental.stats.bytesRead >= 1 << 20 && incremental.stats.bytesRead <= 2 << 20,
                "read \(incremental.stats.bytesRead) bytes for a 1 MiB write")
        #expect(full.stats.bytesRead >= 4 << 20)
        // The snapshot step reads like every other: no "0 B", its duration in seconds as "0.1 s".
        let snapshotStep = try #require(incrementalJob.steps.first { $0.name == "Take snapshot" })
        #expect(snapshotStep.bytes == nil)
        #expect(snapshotStep.detail?.wholeMatch(of: /.*started in \d+(\.\d)? s/) != nil, "\(snapshotStep.detail ?? "")")
        #expect(incremental.id.hasPrefix("rp-\(compactTimestamp(incremental.takenAt))-"))
        print("full read \(full.stats.bytesRead) B in \(full.stats.seconds) s; incremental read \(incremental.stats.bytesRead) B in \(incremental.stats.seconds) s; \(incrementalJob.steps.map { "\($0.name): \($0.detail ?? "")" })")

        // Both points restore to exactly what the guest hashed.
        #expect(try await s.restoreHashes(full.id)["vda"] == h0)
        #expect(try await s.restoreHashes(incremental.id)["vda"] == h1)

        // Application consistency: a pre-script in the guest writes a marker before the freeze.
        try await s.configureScripts(preScript: "echo app-quiesced > /mnt/marker; sync", continueOnFailure: false)
        let (consistent, _) = try await s.backup()
        #expect(consistent.consistency == .applicationConsistent, "\(consistent.guest.reason)")
        let markerImage = try await s.restoreFolder(consistent.id) + "/vdb"
        #expect(try run("/sbin/debugfs", "-R", "cat /marker", markerImage).contains("app-quiesced"))
        // A failing pre-script with continueBackupOnFailure=true: file-system-consistent.
        try await s.configureScripts(preScript: "exit 3", continueOnFailure: true)
        let (lowered, _) = try await s.backup()
        #expect(lowered.consistency == .fileSystemConsistent, "\(lowered.guest.reason)")
        #expect(lowered.guest.errors.map(\.code).contains(.preScriptExecutionFailed), "\(lowered.guest.errors)")
        try await s.guest("rm -f /etc/coffre/VMSnapshotScriptPluginConfig.json")

        // The domain is destroyed and started again: bitmaps persisted, still incremental.
        try await s.domain.destroy()
        try await s.domain.start()
        try await Setup.waitForAgent(s.domain)
        let h2 = try await s.writeAndHash(mib: 1, at: 30)
        let (afterRestart, _) = try await s.backup()
        #expect(afterRestart.changes?.resyncReason == nil && afterRestart.changes?.changedOnlyDisks == 2,
                "\(String(describing: afterRestart.changes))")
        #expect(afterRestart.stats.bytesRead <= 2 << 20)
        #expect(try await s.restoreHashes(afterRestart.id)["vda"] == h2)

        // Checkpoint metadata deleted: a full read, the reason on the point.
        let token = try #require(afterRestart.changes?.token)
        try await s.domain.deleteCheckpoint(token, metadataOnly: true)
        let (resynced, resyncJob) = try await s.backup()
        #expect(resynced.changes?.resyncReason?.contains(token) == true)
        #expect(resyncJob.details["resyncReason"] != nil)
        #expect(resynced.stats.bytesRead >= 5 << 20)

        // Shut off: the disk files are read through qemu-nbd, still incremental from the newest checkpoint.
        try await s.domain.destroy()
        let (offline, _) = try await s.backup()
        #expect(offline.consistency == .crashConsistent)
        #expect(offline.changes?.changedOnlyDisks == 2 && offline.changes?.resyncReason == nil, "\(String(describing: offline.changes))")
        #expect(offline.stats.bytesRead <= 1 << 20)
        #expect(try await s.restoreHashes(offline.id)["vda"] == h2)
        #expect(!FileManager.default.fileExists(atPath: s.folder + "/scratch/" + offline.job))
        try await s.domain.start()
        try await Setup.waitForAgent(s.domain)

        // Restore the incremental as a new domain while the original runs, and boot it: it has
        // a console log and sockets of its own.
        #expect(try await s.domain.state().isActive)
        let copy = Self.vmName + "-restored"
        let restore = try await s.engine.wait(for: try await s.engine.restore(key.description, point: incremental.id, to: .newVM(name: copy)).id)
        #expect(restore.status == .succeeded, "\(restore.error.map(\.description) ?? "")")
        let restoreDirectory = s.folder + "/restored"
        // The job names the disks where they are, not in the staging folder they were written to.
        #expect(restore.details["files"] == "\(restoreDirectory)/\(copy)/vda.qcow2,\(restoreDirectory)/\(copy)/vdb.qcow2")
        let restored = try #require(try await s.connection.domain(named: copy))
        let restoredXML = try await restored.xml(inactive: true)
        #expect(restoredXML.contains("\(restoreDirectory)/\(copy)/e2e.console.log") && !restoredXML.contains(s.folder + "/vm/"),
                "\(restoredXML)")
        try await restored.start()
        try await Setup.waitForAgent(restored)
        let booted = try await restored.guestShell("sha256sum /dev/vda")
        #expect(String(booted.output.prefix(64)) == h1)
        // Its disks are qcow2 images written by the vault (checkpoints work on them), still
        // consistent after QEMU booted from them.
        let restoredDisks = try await restored.describe().disks.filter { ["vda", "vdb"].contains($0.target) }
        #expect(restoredDisks.count == 2 && restoredDisks.allSatisfy { $0.format == "qcow2" && $0.source?.hasSuffix(".qcow2") == true })

        // The same point again under another name: a second copy starts beside the first and the original.
        let second = Self.vmName + "-restored2"
        let again = try await s.engine.wait(for: try await s.engine.restore(key.description, point: incremental.id, to: .newVM(name: second)).id)
        #expect(again.status == .succeeded, "\(again.error.map(\.description) ?? "")")
        let secondDomain = try #require(try await s.connection.domain(named: second))
        try await secondDomain.start()
        try await Setup.waitForAgent(secondDomain)
        #expect(String(try await secondDomain.guestShell("sha256sum /dev/vda").output.prefix(64)) == h1)
        let originalRuns = try await s.domain.state().isActive, firstCopyRuns = try await restored.state().isActive
        #expect(originalRuns && firstCopyRuns)
        #expect(FileManager.default.fileExists(atPath: "\(restoreDirectory)/\(second)/e2e.console.log"))
        try await secondDomain.destroy()
        try await restored.destroy()
        for disk in restoredDisks { _ = try run("/usr/bin/qemu-img", "check", "-q", "-f", "qcow2", disk.source ?? "") }

        // The point kept the domain's definition: a new VM can be made from it once libvirt
        // no longer knows the original (here: a name it never had).
        let kept = try #require(incremental.definition)
        #expect(kept.contains("<name>\(Self.vmName)</name>"))
        var gone = try #require(try await s.fabric.vm(key))
        gone.name = Self.vmName + "-gone"
        let third = Self.vmName + "-restored3"
        let fromPoint = try await s.fabric.makeRestoreTarget(.newVM(name: third, original: gone, definition: kept))
        #expect(fromPoint.format == .qcow2)
        #expect(try await fromPoint.commit().key.name == third)
        let defined = try #require(try await s.connection.domain(named: third))
        #expect(try await defined.describe().disks.first { $0.target == "vda" }?.source?.hasSuffix("-restored3/vda.qcow2") == true)
        try await defined.undefine()
        await #expect(throws: CoffreError.self) {
            _ = try await s.fabric.makeRestoreTarget(.newVM(name: Self.vmName + "-restored4", original: gone, definition: nil))
        }

        // Replace the disks of the domain with the full point's: refused while it runs, done
        // once it is shut off; it boots with the full point's content and its checkpoints are gone.
        let whileRunning = try await s.engine.wait(for: try await s.engine.restore(
            key.description, point: full.id, to: .replaceDisks(confirmed: true)).id)
        #expect(whileRunning.status == .failed && whileRunning.error?.code == .vmMustBeStopped)
        try await s.domain.destroy()
        let replaced = try await s.engine.wait(for: try await s.engine.restore(
            key.description, point: full.id, to: .replaceDisks(confirmed: true)).id)
        #expect(replaced.status == .succeeded, "\(replaced.error.map(\.description) ?? "")")
        #expect(try await s.domain.checkpointNames().isEmpty)
        try await s.domain.start()
        try await Setup.waitForAgent(s.domain)
        #expect(String(try await s.guest("sha256sum /dev/vda").prefix(64)) == h0)
        await s.tearDown()
    }
}

/// Runs a host program; its stdout, or an error with its stderr.
@discardableResult
func run(_ program: String, _ arguments: String...) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let output = out.fileHandleForReading.readDataToEndOfFile()
    let error = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TestFailure("CommandFailed: \(program) \(arguments.joined(separator: " ")): \(String(decoding: error, as: UTF8.self))")
    }
    return String(decoding: output, as: UTF8.self)
}

/// A step of the end-to-end scenario that did not go as it must.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
#endif
