#if Libvirt
import CoffreCore
import CoffreEngine
@testable import CoffreLibvirt
import CoffreSQLite
import CoffreStorage
import CoffreSystem
import Foundation
import Testing

/// Instant restore and boot verification on a real libvirt host: the tiny guest's clone
/// backed up, then run from its point through Coffre's NBD server.
@Suite("instant restore and boot verification", .serialized, .enabled(if: TestHost.live, "needs `scripts/libvirt-harness up`"))
struct InstantRestoreTests {
    typealias Setup = FabricEndToEndTests.Setup

    /// The domain `name` once its guest agent answers.
    static func running(_ s: Setup, _ name: String) async throws -> LibvirtDomain {
        let domain = try #require(try await s.connection.domain(named: name))
        try await Setup.waitForAgent(domain)
        return domain
    }

    /// Folders of the fabric's scratch directory left by instant restores.
    static func instantScratch(_ s: Setup) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: s.folder + "/scratch")) ?? []).filter { $0.hasPrefix("instant-") }
    }

    @Test("a VM runs from a point while its disks are copied, then runs on its own copies, byte for byte the point's")
    func instantRestore() async throws {
        let s = try await Setup(vmName: "coffre-instant", agent: false)
        defer { Task { await s.tearDown() } }
        let key = try await s.protect()
        try await s.guest("echo instant > /mnt/marker; sync")
        let hash = try await s.writeAndHash(mib: 8, at: 4)
        let (point, _) = try await s.backup()

        let name = "coffre-instant-copy"
        let job = try await s.engine.wait(for: try await s.engine.restore(key.description, point: point.id, to: .instant(name: name)).id)
        #expect(job.status == .succeeded, "\(job.error?.description ?? "")")
        #expect(job.steps.map(\.name) == ["Prepare instant restore", "Start VM on the point's disks", "Copy disks while the VM runs",
                                          "Switch to the local disks"])
        let seconds = try #require(job.details["runningAfterSeconds"].flatMap(Double.init))
        print("instant restore: \(name) running \(seconds) s after the job started; job took \(job.endedAt!.timeIntervalSince(job.startedAt)) s")
        let final = s.folder + "/restored/" + name
        #expect(job.details["files"] == "\(final)/vda.qcow2,\(final)/vdb.qcow2")
        #expect(job.progress.scannedBytes == job.progress.totalBytes && job.progress.totalBytes == 128 << 20)

        // It runs on its own files: no NBD, no overlay, in its live and its persistent definition.
        let copy = try await Self.running(s, name)
        #expect(try await copy.isPersistent())
        for xml in [try await copy.xml(), try await copy.xml(inactive: true)] {
            #expect(!xml.contains("nbd") && !xml.contains("overlay"), "\(xml)")
        }
        #expect(try await copy.describe().disks.map(\.source) == ["\(final)/vda.qcow2", "\(final)/vdb.qcow2"])
        // The MACs it runs with are the ones it boots with next time.
        let macs = { (xml: String) in xml.matches(of: /mac address='([0-9a-f:]+)'/).map { String($0.1) } }
        let live = macs(try await copy.xml()), persistent = macs(try await copy.xml(inactive: true))
        #expect(!live.isEmpty && live == persistent, "\(live) \(persistent)")
        #expect(Self.instantScratch(s).isEmpty, "the overlays and the NBD socket are gone")
        #expect(String(try await copy.guestShell("sha256sum /dev/vda").output.prefix(64)) == hash)
        #expect(try await copy.guestShell("cat /mnt/marker").output == "instant\n")

        // Byte for byte the point's disk (the folder restore is the reference); vdb is not: the
        // guest mounted it, which writes its superblock.
        try await copy.destroy()
        let reference = try await s.restoreFolder(point.id)
        _ = try run("/usr/bin/qemu-img", "compare", "-q", "-f", "raw", "-F", "qcow2", "\(reference)/vda", "\(final)/vda.qcow2")
        await s.tearDown()
    }

    @Test("cancelled while it copies: the VM, its copies and its overlays are gone")
    func cancelDuringTheCopy() async throws {
        // 1 MiB/s: the copy of 128 MiB outlasts the test's look at the running VM.
        let s = try await Setup(vmName: "coffre-instcancel", agent: false) { $0.instantCopyBandwidth = 1 << 20 }
        defer { Task { await s.tearDown() } }
        let key = try await s.protect()
        let hash = try await s.writeAndHash(mib: 4, at: 8)
        let (point, _) = try await s.backup()

        let name = "coffre-instcancel-copy"
        let started = try await s.engine.restore(key.description, point: point.id, to: .instant(name: name))
        var copying = false
        for _ in 0..<300 where !copying {
            try await Task.sleep(for: .milliseconds(200))
            let job = try #require(try await s.catalog.job(id: started.id))
            copying = job.steps.last?.name == "Copy disks while the VM runs" && job.steps.last?.status == .inProgress
        }
        #expect(copying)
        // While the copy runs, the guest reads its disk from the point through the overlay.
        let domain = try await Self.running(s, name)
        #expect(String(try await domain.guestShell("sha256sum /dev/vda").output.prefix(64)) == hash)
        #expect(Self.instantScratch(s).count == 1)

        _ = try await s.engine.cancel(jobID: started.id)
        let job = try await s.engine.wait(for: started.id)
        #expect(job.status == .cancelled, "\(job.status) \(job.error?.description ?? "")")
        #expect(try await s.connection.domain(named: name) == nil)
        #expect(!FileManager.default.fileExists(atPath: s.folder + "/restored/" + name))
        #expect(Self.instantScratch(s).isEmpty)
        await s.tearDown()
    }

    @Test("boot verification: a good point boots and passes its check; a point whose disk was zeroed fails, named")
    func bootVerification() async throws {
        let s = try await Setup(vmName: "coffre-verify-e2e", agent: false)
        defer { Task { await s.tearDown() } }
        let key = try await s.protect()
        try await s.guest("echo verified > /mnt/marker; sync")
        let (good, _) = try await s.backup()
        let check = "test \"$(cat /mnt/marker)\" = verified"

        let passed = try await s.engine.wait(for: try await s.engine.verify(
            key.description, point: good.id, .init(checks: [.data, .boot], bootCommand: check, bootTimeoutSeconds: 120)).id)
        #expect(passed.status == .succeeded, "\(passed.error?.description ?? "")")
        let verification = try #require(try await s.catalog.point(id: good.id)?.verification)
        #expect(verification.succeeded && verification.checks == [.data, .boot])
        #expect(verification.detail.contains("succeeded"), "\(verification.detail)")
        // The isolated VM had no network and is gone, with its files.
        #expect(try await s.connection.domains().filter { $0.name.hasPrefix("coffre-verify-") && $0.name != s.vmName }.isEmpty)
        #expect(Self.instantScratch(s).isEmpty)

        // The data disk zeroed in the guest, backed up: the VM still starts (its kernel is not
        // on the disk), but the check finds no file system.
        try await s.guest("umount /mnt; dd if=/dev/zero of=/dev/vdb bs=1M count=64 conv=fsync 2>/dev/null; sync")
        let (zeroed, _) = try await s.backup()
        let failed = try await s.engine.wait(for: try await s.engine.verify(
            key.description, point: zeroed.id, .init(checks: [.boot], bootCommand: check, bootTimeoutSeconds: 120)).id)
        #expect(failed.status == .failed && failed.error?.code == .bootVerificationFailed, "\(failed.error?.description ?? "")")
        #expect(failed.error?.message.contains(zeroed.id) == true && failed.error?.message.contains(check) == true)
        let recorded = try #require(try await s.catalog.point(id: zeroed.id)?.verification)
        #expect(!recorded.succeeded && recorded.error?.code == .bootVerificationFailed)
        #expect(try await s.connection.domains().filter { $0.name.hasPrefix("coffre-verify-") && $0.name != s.vmName }.isEmpty)
        #expect(try await s.engine.dashboard().verificationsFailed == 1)
        await s.tearDown()
    }

    /// The `coffre` executable built with the tests (`COFFRE_BIN` to use another).
    static let coffre: String = ProcessInfo.processInfo.environment["COFFRE_BIN"]
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path + "/.build/debug/coffre"

    @Test("the command serving the point: Ctrl-C cancels and removes the VM; kill -9 mid-copy leaves the VM, paused at its next read of the point, and the job says so")
    func servingProcessKilled() async throws {
        let s = try await Setup(vmName: "coffre-instkill", agent: false)
        defer { Task { await s.tearDown() } }
        let key = try await s.protect()
        _ = try await s.writeAndHash(mib: 16, at: 8)
        let (point, _) = try await s.backup()

        // The command line on the same data folder, the fabric's copy slowed to 1 MiB/s.
        let settings: [String: Any] = [
            "region": "local", "fabrics": [] as [Any],
            "libvirtFabrics": [["name": "kvm", "uri": TestHost.uri, "scratchDirectory": s.folder + "/scratch",
                                "restoreDirectory": s.folder + "/restored", "instantCopyMiBPerSecond": 1]],
        ]
        try JSONSerialization.data(withJSONObject: settings).write(to: URL(fileURLWithPath: s.folder + "/coffre.json"))
        /// `coffre restore --instant` as a child process, and its VM once the guest agent answers.
        func instantRestore(_ name: String) async throws -> (Process, LibvirtDomain) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.coffre)
            process.arguments = ["restore", key.description, "--point", point.id, "--as-new-vm", name, "--instant", "--no-progress",
                                 "--data", s.folder]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            for _ in 0..<300 {
                try await Task.sleep(for: .milliseconds(200))
                if let found = try await s.connection.domain(named: name), (try? await found.guestPing()) != nil { return (process, found) }
            }
            kill(process.processIdentifier, SIGKILL)
            throw TestFailure("the instant restore's VM \(name) never answered")
        }

        // Ctrl-C of the command serving the point cancels the job: no VM, no file.
        let (interrupted, _) = try await instantRestore("coffre-instkill-int")
        kill(interrupted.processIdentifier, SIGINT)
        interrupted.waitUntilExit()
        #expect(interrupted.terminationReason == .exit && interrupted.terminationStatus != 0)
        #expect(try await s.connection.domain(named: "coffre-instkill-int") == nil)
        #expect(!FileManager.default.fileExists(atPath: s.folder + "/restored/coffre-instkill-int") && Self.instantScratch(s).isEmpty)

        // kill -9 instead: the VM stays, without its server.
        let name = "coffre-instkill-copy"
        let (process, copy) = try await instantRestore(name)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()

        // The guest reads its whole disk, past what was copied: the server is gone, QEMU stops the
        // guest on the read error instead of failing it (rerror_policy=stop). A guest that read
        // an uncopied block on its own is paused already, and its agent cannot answer.
        var paused = "", asked = false
        for _ in 0..<300 where !paused.contains("I/O error") {
            if !asked {
                asked = (try? await copy.guestShell("(dd if=/dev/vda of=/dev/null bs=1M iflag=direct) > /dev/null 2>&1 &")) != nil
            }
            try await Task.sleep(for: .milliseconds(200))
            paused = try await copy.stateDescription().words
        }
        #expect(paused == "paused by an I/O error on a disk", "\(paused)")

        // The next command finds the job's process gone: the job is interrupted, the VM kept and described.
        let jobs = try run(Self.coffre, "jobs", "--type", "Restore", "--json", "--data", s.folder)
        let list = try #require(try JSONSerialization.jsonObject(with: Data(jobs.utf8)) as? [[String: Any]])
        let job = try #require(list.first { ($0["details"] as? [String: String])?["instantVM"] == name })
        let error = try #require(job["error"] as? [String: Any])
        #expect(job["status"] as? String == "Failed" && error["code"] as? String == "JobInterrupted")
        let message = error["message"] as? String ?? ""
        #expect(message.contains(name) && message.contains("paused by an I/O error") && message.contains("overlays"), "\(message)")
        #expect(try await s.connection.domain(named: name) != nil, "the VM is kept: what its users wrote is in it")
        #expect(Self.instantScratch(s).count == 1, "its overlays are kept")
        await s.tearDown()
    }
}
#endif
