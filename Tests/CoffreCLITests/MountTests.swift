import CoffreMount
import CoffreTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

enum MountPrerequisites {
    static var met: Bool {
        if ProcessInfo.processInfo.environment["COFFRE_CI"] != nil { return true }
        let tools = ["sfdisk", "mkfs.ext4", "mkfs.vfat", "mcopy"].allSatisfy { tool in
            ["/usr/sbin/", "/usr/bin/", "/sbin/"].contains { FileManager.default.isExecutableFile(atPath: $0 + tool) }
        }
        return tools && getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/fuse")
    }
}

/// Mounts and file recovery through the `coffre` binary, on a real partitioned disk image (GPT:
/// ext4 and vfat, made by sfdisk, mkfs.ext4 -d and mtools) backed up through the vault. Root
/// only: FUSE and loop devices.
@Suite("CLI mounts and files", .serialized, .enabled(if: MountPrerequisites.met, "needs root, /dev/fuse, fdisk, e2fsprogs, dosfstools, mtools (COFFRE_CI makes this a failure)"))
struct MountTests {
    /// A VM of the local fabric with the partitioned image as its disk.
    func makeVM(_ data: URL, hosts: String, work: URL) throws -> (ext4: String, vfat: String) {
        let folder = data.appendingPathComponent("fabric/prod/web01")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let source = try PartitionedImage.make(folder.appendingPathComponent("os.img").path, work: work.path, hosts: hosts)
        let json: [String: Any] = ["name": "web01", "cloudService": "prod", "region": "local", "powerState": "running",
                                   "agentVersion": "2.0", "disks": ["os.img"]]
        try JSONSerialization.data(withJSONObject: json).write(to: folder.appendingPathComponent("vm.json"))
        return source
    }

    struct Points: Decodable {
        var points: [Row]
        struct Row: Decodable { var point: Point }
        struct Point: Decodable { var id: String }
    }

    struct Entry: Decodable {
        var name: String
        var kind: String
        var mode: Int
        var size: Int
        var target: String?
    }

    func mounts(below path: String) throws -> [String] {
        MountTable.mounts(atOrBelow: URL(fileURLWithPath: path).resolvingSymlinksInPath().path, in: try MountTable.read()).map(\.mountPoint)
    }

    @Test func filesOfTwoPointsOfAVMAreEachPointsAndNothingElse() throws {
        let coffre = try Coffre()
        try withTempDir { dir in
            let data = dir.appendingPathComponent("data")
            let run = try makeDir(dir.appendingPathComponent("run"))
            let env = ["COFFRE_DATA": data.path, "COFFRE_RUN_DIR": run.path]
            let source = try makeVM(data, hosts: "10.0.0.1 first\n", work: dir)
            try coffre.ok(["discover"], env: env)
            try coffre.ok(["register", "web01"], env: env)
            try coffre.ok(["policy", "create", "nightly", "--daily", "22:00", "--keep-days", "7"], env: env)
            try coffre.ok(["protect", "web01", "--policy", "nightly"], env: env)
            try coffre.ok(["backup", "web01", "--no-progress"], env: env)
            _ = try makeVM(data, hosts: "10.0.0.2 second, a longer line\n", work: dir)
            try coffre.ok(["backup", "web01", "--no-progress"], env: env)
            let points = try coffre.json(Points.self, ["points", "web01", "--json"], env: env).points.map(\.point.id)
            try #require(points.count == 2)

            // The listing equals the source folder: names, kinds, modes, sizes, link targets.
            let listing = try coffre.json([Entry].self, ["files", "web01", "--point", points[1], "/os.img/part1/etc", "--json"], env: env)
            let names = try FileManager.default.contentsOfDirectory(atPath: source.ext4 + "/etc").sorted()
            #expect(listing.map(\.name) == names)
            for entry in listing {
                var s = stat()
                #expect(lstat(source.ext4 + "/etc/" + entry.name, &s) == 0)
                #expect(entry.mode == Int(s.st_mode & 0o7777), "\(entry.name)")
                if entry.kind == "file" { #expect(entry.size == Int(s.st_size), "\(entry.name)") }
            }
            #expect(listing.first { $0.name == "escape" }?.target == "/etc/passwd")
            let root = try coffre.ok(["files", "web01", "--point", points[0]], env: env).stdout
            #expect(root.contains("os.img"))
            let disk = try coffre.ok(["files", "web01", "--point", points[0], "/os.img"], env: env).stdout
            #expect(disk.contains("part1  [ext4]") && disk.contains("part2  [vfat]"))

            // Each point has its own version of the changed file; modes kept.
            let out = try makeDir(dir.appendingPathComponent("out"))
            for (index, hosts) in ["10.0.0.1 first\n", "10.0.0.2 second, a longer line\n"].enumerated() {
                try coffre.ok(["files", "get", "web01", "--point", points[index], "/os.img/part1/etc/hosts",
                               "--to", out.appendingPathComponent("hosts-\(index)").path], env: env)
                #expect(try String(contentsOf: out.appendingPathComponent("hosts-\(index)"), encoding: .utf8) == hosts)
                #expect(try fileMode(out.appendingPathComponent("hosts-\(index)")) == 0o640)
            }

            // A folder: contents, modes (set-uid too) and symbolic links kept.
            try coffre.ok(["files", "get", "web01", "--point", points[1], "/os.img/part1/home/ana", "--to", out.path], env: env)
            #expect(try readFile(out.appendingPathComponent("ana/photo.bin")) == readFile(URL(fileURLWithPath: source.ext4 + "/home/ana/photo.bin")))
            #expect(try fileMode(out.appendingPathComponent("ana/run.sh")) == 0o4755)
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out.appendingPathComponent("ana/docs").path) == "../../etc/ssh")
            // vfat: long names, contents.
            try coffre.ok(["files", "get", "web01", "--point", points[1], "/os.img/part2/EFI", "--to", out.path], env: env)
            #expect(try readFile(out.appendingPathComponent("EFI/BOOT/BOOTX64.EFI")) == readFile(URL(fileURLWithPath: source.vfat + "/EFI/BOOT/BOOTX64.EFI")))
            #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("EFI/Read me first.txt").path))

            // Nothing outside the point's file systems.
            for path in ["/os.img/part1/../part2/startup.nsh", "/os.img/part1/etc/escape/x", "/os.img/part1/etc/up/up/etc/hosts"] {
                let r = try coffre.run(["files", "get", "web01", "--point", points[0], path, "--to", out.appendingPathComponent("x").path], env: env)
                expectOneLineError(r, path)
                #expect(r.stderr.contains("[PathOutsidePoint]"), "\(path): \(r.stderr)")
            }
            let missing = try coffre.run(["files", "web01", "--point", points[0], "/os.img/part1/nope"], env: env)
            expectOneLineError(missing, "missing path")
            #expect(missing.stderr.contains("[PathNotFound]"))
            let unknown = try coffre.run(["files", "web01", "--point", "rp-20200101T000000-00000000", "/"], env: env)
            expectOneLineError(unknown, "unknown point")

            // Every browse unmounted what it mounted.
            #expect(try mounts(below: run.path).isEmpty)
            #expect(directoryEntries(run).isEmpty)
        }
    }

    /// A `coffre mount` in the background, its output in a file.
    final class Background {
        let process = Process()
        let output: URL

        init(_ coffre: Coffre, _ arguments: [String], output: URL) throws {
            self.output = output
            FileManager.default.createFile(atPath: output.path, contents: nil)
            process.executableURL = coffre.binary
            process.arguments = arguments
            let handle = try FileHandle(forWritingTo: output)
            process.standardOutput = handle
            process.standardError = handle
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }

        var text: String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }

        /// Waits until `path` can be read (the mount is up), or fails.
        func waitFor(_ path: String, seconds: Double = 60) throws {
            let deadline = Date().addingTimeInterval(seconds)
            while !FileManager.default.isReadableFile(atPath: path) || !text.contains("stop with Ctrl-C") {
                guard process.isRunning, Date() < deadline else { throw HarnessError("the mount did not come up: \(text)") }
                usleep(50_000)
            }
        }
    }

    @Test func aKilledMountIsClearedByUnmountAndByTheNextMount() throws {
        let coffre = try Coffre()
        try withTempDir { dir in
            let image = dir.appendingPathComponent("os.img")
            let source = try PartitionedImage.make(image.path, work: dir.path)
            let vault = dir.appendingPathComponent("vault")
            try coffre.createVault(vault)
            let point = try coffre.backup(vault, item: "web01", disks: [image])
            let target = try makeDir(dir.appendingPathComponent("mnt")).resolvingSymlinksInPath().path
            defer { _ = try? coffre.run(["unmount", "--lazy", target]) }
            let mount = ["image", "mount", "--vault", vault.path, "--point", point, target]

            // The disks as files: the image, byte for byte.
            var background = try Background(coffre, mount, output: dir.appendingPathComponent("plain.log"))
            try background.waitFor(target + "/os.img")
            #expect(try readFile(URL(fileURLWithPath: target + "/os.img")) == readFile(image))
            kill(background.process.processIdentifier, SIGINT)
            background.process.waitUntilExit()
            #expect(background.process.terminationStatus == 0, "\(background.text)")
            #expect(try mounts(below: target).isEmpty)

            // With partitions, then killed: the folder is left stale until cleared.
            background = try Background(coffre, mount + ["--partitions"], output: dir.appendingPathComponent("parts.log"))
            try background.waitFor(target + "/os.img/part1/etc/hosts")
            #expect(try readFile(URL(fileURLWithPath: target + "/os.img/part1/etc/hosts")) == readFile(URL(fileURLWithPath: source.ext4 + "/etc/hosts")))
            #expect(FileManager.default.fileExists(atPath: target + "/os.img/part2/EFI/BOOT/BOOTX64.EFI"))
            let second = try coffre.run(mount + ["--partitions"])
            expectOneLineError(second, "a second mount on a live one")
            #expect(second.stderr.contains("[MountPointUnusable]"))
            kill(background.process.processIdentifier, SIGKILL)
            background.process.waitUntilExit()
            #expect(try mounts(below: target).count == 3)  // the disks, ext4, vfat
            #expect(PointMount.isStale(target))
            let cleared = try coffre.ok(["unmount", target])
            #expect(cleared.stdout.contains("unmounted \(target)"))
            #expect(try mounts(below: target).isEmpty)
            #expect(MountTable.loopDevices(backedBelow: target).isEmpty)
            let again = try coffre.run(["unmount", target])
            expectOneLineError(again, "unmount of nothing")
            #expect(again.stderr.contains("[NotMounted]"))

            // Killed again; the next mount clears it by itself.
            background = try Background(coffre, mount + ["--partitions"], output: dir.appendingPathComponent("again.log"))
            try background.waitFor(target + "/os.img/part1/etc/hosts")
            kill(background.process.processIdentifier, SIGKILL)
            background.process.waitUntilExit()
            background = try Background(coffre, mount + ["--partitions"], output: dir.appendingPathComponent("after.log"))
            try background.waitFor(target + "/os.img/part1/etc/hosts")
            #expect(try mounts(below: target).count == 3)
            // `coffre unmount` of a live mount: the mount's process ends on its own, cleanly.
            try coffre.ok(["unmount", target])
            background.process.waitUntilExit()
            #expect(background.process.terminationStatus == 0, "\(background.text)")
            #expect(try mounts(below: target).isEmpty)
            #expect(MountTable.loopDevices(backedBelow: target).isEmpty)
        }
    }
}
