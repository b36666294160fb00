import CoffreCore
import CoffreEngine
import CoffreTesting
import Foundation
import Testing

/// SPEC section on restore (X1): what a restore job reports.
@Suite struct RestoreTests {
    @Test func X1_aRestoreAsANewVMReportsItsDisksWhereTheyAreNotWhereTheyWereWritten() async throws {
        let h = try await Harness()
        let key = try h.addVM("web01", disks: [1 << 20, 1 << 16])
        try h.write(key, at: 0, pattern(40_000, seed: 3))
        try await h.protect(["web01"])
        let point = try await h.backup("web01")

        let job = try await h.succeed(try await h.engine.restore("web01", point: point.id, to: .newVM(name: "web01-copy")))
        let copy = VMKey(cloudService: "prod", name: "web01-copy")
        #expect(job.details["restoredVM"] == copy.description)
        let files = try #require(job.details["files"]).split(separator: ",").map(String.init)
        #expect(files == [h.vmFolder(copy) + "/os.img", h.vmFolder(copy) + "/data1.img"])
        for file in files { #expect(FileManager.default.fileExists(atPath: file), "\(file) does not exist") }
        #expect(try h.disks(of: copy) == (try h.disks(of: key)))
        #expect(job.details["notes"] == nil)

        // To a folder, the files are the folder's.
        let folder = h.folder + "/restored-web01"
        let toFolder = try await h.succeed(try await h.engine.restore("web01", point: point.id, to: .folder(folder)))
        #expect(toFolder.details["files"]?.split(separator: ",").map(String.init) == [folder + "/os.img", folder + "/data1.img"])
    }

    /// A VM with a point, on a fabric that runs points; the copy of an instant restore held.
    static func instantSetup() async throws -> (Harness, RecoveryPointRecord) {
        let h = try await Harness()
        try await h.protectedVM("web01")
        let point = try await h.backup("web01")
        h.fabric.set { $0.runsPoints = true; $0.holdCopy = true }
        return (h, point)
    }

    /// Waits until the fabric has logged `event`.
    static func waitFor(_ event: String, _ h: Harness) async throws {
        try await h.eventually(event) { h.fabric.events.contains(event) }
    }

    @Test func X1_anInstantRestoreStartsTheVMThenCopiesThenSwitchesAndNamesTheVMOnlyOnceItIsThere() async throws {
        let (h, point) = try await Self.instantSetup()
        let started = try await h.engine.restore("web01", point: point.id, to: .instant(name: "web01-now"))
        try await Self.waitFor("copy", h)
        let running = try #require(try await h.catalog.job(id: started.id))
        #expect(running.details["instantVM"] == "web01-now" && running.details["restoredVM"] == nil)
        h.fabric.set { $0.holdCopy = false }
        let job = try await h.succeed(started)
        #expect(h.fabric.events.suffix(4) == ["instant web01-now restore", "start", "copy", "finish"])
        #expect(job.details["restoredVM"] == "prod/web01-now" && job.details["instantVMID"] == "uuid-web01-now")
        #expect(job.details["files"] == "/restored/web01-now/os.img.qcow2")
        #expect(job.details["runningAfterSeconds"].flatMap(Double.init) != nil)
    }

    @Test func X1_aCancelledInstantRestoreRemovesEverythingAShutdownKeepsTheVMAndSaysSo() async throws {
        // Cancelled by someone: aborted.
        let (h, point) = try await Self.instantSetup()
        let cancelled = try await h.engine.restore("web01", point: point.id, to: .instant(name: "web01-a"))
        try await Self.waitFor("copy", h)
        _ = try await h.engine.cancel(jobID: cancelled.id)
        let ended = try await h.finish(cancelled)
        #expect(ended.status == .cancelled && h.fabric.events.last == "abort" && !h.fabric.events.contains("detach"))
        #expect(ended.details["restoredVM"] == nil)

        // The process stops (SIGTERM: every job cancelled, nobody asked): the VM is kept and described.
        let stopped = try await h.engine.restore("web01", point: point.id, to: .instant(name: "web01-b"))
        try await h.eventually("the second copy") { h.fabric.events.filter { $0 == "copy" }.count == 2 }
        await h.engine.cancelAllAndWait()
        let interrupted = try #require(try await h.catalog.job(id: stopped.id))
        #expect(interrupted.status == .failed && interrupted.error?.code == .jobInterrupted)
        #expect(interrupted.error?.message.contains("The VM web01-b is running on the point") == true)
        #expect(h.fabric.events.last == "detach")

        // A copy that fails: aborted, with the fabric's error.
        try await h.reconfigure()
        h.fabric.set { $0.holdCopy = false; $0.failCopy = true }
        let failed = try await h.finish(try await h.engine.restore("web01", point: point.id, to: .instant(name: "web01-c")))
        #expect(failed.status == .failed && failed.error?.code == .instantRestoreFailed && h.fabric.events.last == "abort")
    }
}
