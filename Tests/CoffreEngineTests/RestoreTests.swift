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
}
