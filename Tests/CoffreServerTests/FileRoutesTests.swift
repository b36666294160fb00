import CoffreCore
import CoffreMount
@testable import CoffreServer
import CoffreSystem
import CoffreTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

enum FileRoutePrerequisites {
    /// Root, FUSE and the image tools; under COFFRE_CI their absence is a failure instead.
    static var met: Bool {
        if ProcessInfo.processInfo.environment["COFFRE_CI"] != nil { return true }
        let tools = ["sfdisk", "mkfs.ext4", "mkfs.vfat", "mcopy", "tar"].allSatisfy { tool in
            ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"].contains { FileManager.default.isExecutableFile(atPath: $0 + tool) }
        }
        return tools && getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/fuse")
    }
}

/// Browsing and downloading a point's files through the API, on a real partitioned image
/// (GPT: ext4 and vfat) of a local-fabric VM, mounted by the server (root only).
@Suite(.serialized, .enabled(if: FileRoutePrerequisites.met, "needs root, /dev/fuse, fdisk, e2fsprogs, dosfstools, mtools"))
struct FileRoutesTests {
    func protectedVM(_ harness: ServerHarness) async throws -> (source: (ext4: String, vfat: String), point: String) {
        let vmFolder = harness.folder + "/fabric/prod/web01"
        try FileManager.default.createDirectory(atPath: vmFolder, withIntermediateDirectories: true)
        let source = try PartitionedImage.make(vmFolder + "/os.img", work: harness.folder + "/source")
        let json: [String: Any] = ["name": "web01", "cloudService": "prod", "region": ServerHarness.region, "osType": "linux",
                                   "powerState": "running", "disks": ["os.img"], "agentVersion": "2.1"]
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: vmFolder + "/vm.json"))
        try await harness.finish(try await harness.engine.discover().id)
        for job in await harness.engine.register(["web01"]).jobs { try await harness.finish(job.id) }
        try await harness.engine.createPolicy(Policy(name: "p", schedule: .daily(at: TimeOfDay(hour: 22, minute: 0)), retention: Retention(days: 7)))
        for job in await harness.engine.protect(["web01"], policy: "p").jobs { try await harness.finish(job.id) }
        try await harness.finish(try await harness.engine.backupNow("web01", retainUntil: nil).id)
        let point = try #require(try await harness.engine.points(of: "web01").points.last).id
        return (source, point)
    }

    func mounts(below path: String) throws -> [Mount] {
        MountTable.mounts(atOrBelow: path, in: try MountTable.read())
    }

    @Test func listAndDownloadFilesAndFoldersOfAPoint() async throws {
        let harness = try await ServerHarness { folder in
            PointFileService(runDirectory: folder + "/run", idleTimeout: .milliseconds(200))
        }
        let (source, point) = try await protectedVM(harness)
        let base = "/api/v1/vms/web01/points/\(point)/files"
        try await harness.app.test(.router) { client in
            let api = APIClient(client: client, harness: harness)

            let root = try api.decode(PointListing.self, try await api.send(.get, base, as: .operator))
            #expect(root.children.map(\.name) == ["os.img"])
            let disk = try api.decode(PointListing.self, try await api.send(.get, base + "?path=/os.img", as: .operator))
            #expect(disk.children.map { "\($0.name) \($0.fileSystem ?? "-")" } == ["part1 ext4", "part2 vfat"])
            let etc = try api.decode(PointListing.self, try await api.send(.get, base + "?path=/os.img/part1/etc", as: .operator))
            #expect(etc.children.map(\.name) == (try FileManager.default.contentsOfDirectory(atPath: source.ext4 + "/etc")).sorted())
            #expect(etc.children.first { $0.name == "hosts" }?.mode == 0o640)

            // Operators only; nothing outside the point.
            #expect(try await api.send(.get, base + "?path=/", as: .reader).status == .forbidden)
            let escape = try await api.send(.get, base + "?path=/os.img/part1/etc/escape/x", as: .operator)
            #expect(escape.status == .badRequest)
            #expect(String(buffer: escape.body).contains("PathOutsidePoint"))
            let dotdot = try await api.send(.get, base + "/download?path=/os.img/part1/../part2/startup.nsh", as: .operator)
            #expect(dotdot.status == .badRequest)
            #expect(try await api.send(.get, base + "?path=/os.img/part1/nothing", as: .operator).status == .notFound)

            // A file: its bytes, as an attachment.
            let photo = try await api.send(.get, base + "/download?path=/os.img/part1/home/ana/photo.bin", as: .operator)
            #expect(photo.status == .ok)
            #expect(Data(buffer: photo.body) == (try Data(contentsOf: URL(fileURLWithPath: source.ext4 + "/home/ana/photo.bin"))))
            #expect(photo.headers[.contentDisposition]?.contains("filename=\"photo.bin\"") == true)
            #expect(photo.headers[.contentLength] == "\(307_200)")

            // A folder: a tar that GNU tar extracts to the source, modes and links included.
            let tarResponse = try await api.send(.get, base + "/download?path=/os.img/part1/home", as: .operator)
            #expect(tarResponse.status == .ok)
            #expect(tarResponse.headers[.contentType] == "application/x-tar")
            #expect(tarResponse.headers[.contentDisposition]?.contains("home.tar") == true)
            let out = harness.folder + "/extracted"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try Data(buffer: tarResponse.body).write(to: URL(fileURLWithPath: out + "/home.tar"))
            try runScript("cd '\(out)' && tar -xpf home.tar && rm home.tar")
            #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/home/ana/photo.bin"))
                    == Data(contentsOf: URL(fileURLWithPath: source.ext4 + "/home/ana/photo.bin")))
            var s = stat()
            #expect(stat(out + "/home/ana/run.sh", &s) == 0 && s.st_mode & 0o7777 == 0o4755)
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/home/ana/docs") == "../../etc/ssh")
            let listing = try runScript("cd '\(out)' && find home | sort")
            let expected = try runScript("cd '\(source.ext4)' && find home | sort")
            #expect(listing == expected)

            // vfat through the API too.
            let efi = try await api.send(.get, base + "/download?path=/os.img/part2/EFI/BOOT/BOOTX64.EFI", as: .operator)
            #expect(Data(buffer: efi.body) == (try Data(contentsOf: URL(fileURLWithPath: source.vfat + "/EFI/BOOT/BOOTX64.EFI"))))
        }
        // Unused, the point is unmounted and released (the reaper looks every 5 s; a loaded CI
        // machine once took longer than 20 s to unmount the three file systems, another over 60 s).
        let deadline = Date().addingTimeInterval(240)
        while try !mounts(below: harness.folder + "/run").isEmpty, Date() < deadline { try await Task.sleep(for: .milliseconds(200)) }
        #expect(try mounts(below: harness.folder + "/run").isEmpty)
    }

    @Test func withoutABrowserTheServerSaysWhy() async throws {
        let harness = try await ServerHarness()
        let (_, point) = try await protectedVM(harness)
        try await harness.app.test(.router) { client in
            let api = APIClient(client: client, harness: harness)
            let response = try await api.send(.get, "/api/v1/vms/web01/points/\(point)/files", as: .operator)
            #expect(response.status == .internalServerError)
            #expect(String(buffer: response.body).contains("FUSEUnavailable"))
        }
    }
}
