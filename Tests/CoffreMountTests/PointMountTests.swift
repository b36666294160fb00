import CoffreCore
import CoffreSystem
@testable import CoffreMount
import CoffreTesting
import Foundation
import Testing

/// Mounts of a real partitioned image (GPT: ext4 and vfat) served through FUSE, the kernel's
/// ext4 over a loop device, and Coffre's FAT reader. Root only (FUSE, loop devices).
@Suite(.serialized, .enabled(if: ImageTools.canMount && ImageTools.has("sfdisk", "mkfs.ext4", "mkfs.vfat", "mcopy"),
                             "needs root, /dev/fuse, fdisk, e2fsprogs, dosfstools and mtools (COFFRE_CI makes this a failure)"))
struct PointMountTests {
    let folder: String
    let image: String
    let source: (ext4: String, vfat: String)

    init() throws {
        folder = try temporaryFolder("PointMountTests")
        image = folder + "/os.img"
        source = try PartitionedImage.make(image, work: folder)
    }

    func mounted(_ directory: String) throws -> [Mount] {
        MountTable.mounts(atOrBelow: directory, in: try MountTable.read())
    }

    @Test func disksAreFilesEqualToTheImage() throws {
        let disks = try FileDisks([image])
        let directory = folder + "/plain"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let mount = try PointMount.mount(disks, at: directory, options: .init())
        defer { try? mount.unmount() }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["os.img"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory + "/os.img")) == Data(contentsOf: URL(fileURLWithPath: image)))
        #expect(throws: (any Error).self) { try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/os.img")) }
        try mount.unmount()
        #expect(try mounted(directory).isEmpty)
        #expect(disks.closes.withLock { $0 } == 1)
    }

    @Test func partitionsAreMountedAndFilesReadBeneathTheirRoot() throws {
        let disks = try FileDisks([image])
        let directory = folder + "/parts"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let mount = try PointMount.mount(disks, at: directory, options: .init(partitions: true))
        defer { try? mount.unmount(lazy: true) }
        #expect(mount.fileSystems.map { [$0.path, $0.kind.rawValue, "\($0.mounted)"] }
                == [["os.img/part1", "ext4", "true"], ["os.img/part2", "vfat", "true"]])
        #expect(mount.fileSystems.map(\.offset) == [Int64(PartitionedImage.ext4Offset), Int64(PartitionedImage.vfatOffset)])
        let files = PointFiles(mount)
        // Nothing of the guest gains rights here: no devices, no set-uid, no execution.
        for entry in try mounted(directory) {
            #expect(entry.options.contains("nodev") && entry.options.contains("nosuid") && entry.options.contains("ro"),
                    "\(entry.mountPoint): \(entry.options)")
        }
        #expect(try mounted(directory).first { $0.mountPoint.hasSuffix("/part1") }?.options.contains("noexec") == true)

        // Listings equal the source folders, entry by entry: kind, mode, size, target.
        for (path, origin) in [("/os.img/part1/etc", source.ext4 + "/etc"), ("/os.img/part1/home/ana", source.ext4 + "/home/ana")] {
            let listing = try files.list(path)
            let expected = try FileManager.default.contentsOfDirectory(atPath: origin).sorted()
            #expect(listing.children.map(\.name) == expected)
            for entry in listing.children {
                var s = stat()
                #expect(lstat(origin + "/" + entry.name, &s) == 0)
                #expect(entry.mode == Int(s.st_mode & 0o7777), "\(entry.path)")
                #expect(entry.kind == .symlink ? entry.target == (try FileManager.default.destinationOfSymbolicLink(atPath: origin + "/" + entry.name)) : entry.target == nil)
                if entry.kind == .file { #expect(entry.size == Int64(s.st_size)) }
                #expect(abs(entry.modified.timeIntervalSince1970 - Double(s.st_mtim.tv_sec)) < 1, "\(entry.path)")
            }
        }
        #expect(try files.list("/os.img/part2/EFI").children.map(\.name) == ["BOOT", "Read me first.txt"])

        // Copies: contents, modes, times and symbolic links as in the source.
        let out = folder + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let report = try files.copy("/os.img/part1/home/ana", to: out)
        #expect(report.destination == out + "/ana")
        #expect(report.files == 2 && report.symlinks == 1 && report.directories == 2)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/ana/photo.bin")) == Data(contentsOf: URL(fileURLWithPath: source.ext4 + "/home/ana/photo.bin")))
        var s = stat()
        #expect(stat(out + "/ana/run.sh", &s) == 0 && s.st_mode & 0o7777 == 0o4755)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/ana/docs") == "../../etc/ssh")
        _ = try files.copy("/os.img/part2/EFI/BOOT/BOOTX64.EFI", to: out + "/boot.efi")
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/boot.efi")) == Data(contentsOf: URL(fileURLWithPath: source.vfat + "/EFI/BOOT/BOOTX64.EFI")))
        #expect(throws: CoffreError.self) { try files.copy("/os.img/part1/etc/hosts", to: out + "/boot.efi") }  // exists
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).sorted() == ["ana", "boot.efi"])  // nothing partial left

        // A device node is listed, never recreated by a copy.
        if getuid() == 0 {
            #expect(try files.list("/os.img/part1/dev").children.map { "\($0.name) \($0.kind)" } == ["mem other"])
            let devices = try files.copy("/os.img/part1/dev", to: out + "/dev")
            #expect(devices.skipped == ["/os.img/part1/dev/mem"])
            #expect(try FileManager.default.contentsOfDirectory(atPath: out + "/dev").isEmpty)
            try FileManager.default.removeItem(atPath: out + "/dev")
        }

        // A relative link inside the file system is followed on the way.
        #expect(try files.list("/os.img/part1/home/ana/docs/").entry.kind == .symlink)
        #expect(try files.list("/os.img/part1/home/ana/docs/sshd_config").entry.size == 19)

        // Nothing outside the point: '..', an absolute link, a link climbing above the root.
        for path in ["/os.img/part1/../part2", "/os.img/part1/etc/escape/x", "/os.img/part1/etc/up/etc/hosts",
                     "/os.img/part1/etc/up/../../x"] {
            #expect(throws: CoffreError.self, "\(path)") {
                do { _ = try files.list(path) } catch let error as CoffreError {
                    #expect(error.code == .pathOutsidePoint, "\(path): \(error)")
                    throw error
                }
            }
        }
        #expect(throws: CoffreError.self) { try files.copy("/os.img/part1/etc/escape/x", to: out + "/x") }
        // A link at the end of a path is copied as a link, never followed.
        #expect(try files.copy("/os.img/part1/etc/escape/", to: out + "/escape").symlinks == 1)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/escape") == "/etc/passwd")
        try FileManager.default.removeItem(atPath: out + "/escape")
        #expect((try? files.list("/os.img/part3")) == nil)
        #expect((try? files.list("/other.img")) == nil)

        try mount.unmount()
        #expect(try mounted(directory).isEmpty)
        #expect(MountTable.loopDevices(backedBelow: directory).isEmpty)
        #expect(disks.closes.withLock { $0 } == 1)
    }

    /// A block that fails verification is an error naming it, never other bytes: through the
    /// kernel's ext4 and through the FAT reader.
    @Test func aFailedReadIsAnErrorNotOtherBytes() throws {
        let disks = try FileDisks([image])
        let directory = folder + "/failing"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let mount = try PointMount.mount(disks, at: directory, options: .init(partitions: true))
        defer { try? mount.unmount(lazy: true) }
        let files = PointFiles(mount)
        let out = folder + "/failing-out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        disks.failing.withLock { $0 = true }
        for path in ["/os.img/part1/home/ana/photo.bin", "/os.img/part2/EFI/BOOT/BOOTX64.EFI"] {
            do {
                _ = try files.copy(path, to: out)
                Issue.record("a failing read of \(path) was not reported")
            } catch let error as CoffreError {
                #expect(error.code == .fileReadFailed, "\(path): \(error)")
                #expect(error.message.contains("damaged (test)"), "\(path): \(error)")
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).isEmpty)  // nothing half-written
        disks.failing.withLock { $0 = false }
        try mount.unmount()
        #expect(try mounted(directory).isEmpty)
    }

    /// btrfs and xfs from the kernel, without log replay or recovery: a GPT image whose
    /// partition holds a file system made by `mkfs.btrfs --rootdir` or `mkfs.xfs -p` (a
    /// prototype file), no root needed to make it.
    @Test(.enabled(if: ImageTools.has("mkfs.btrfs", "mkfs.xfs"), "apt-get install -y btrfs-progs xfsprogs"),
          arguments: ["btrfs", "xfs"])
    func kernelFileSystemsAreMountedReadOnly(kind: String) throws {
        let source = folder + "/\(kind)-source"
        try FileManager.default.createDirectory(atPath: source + "/srv", withIntermediateDirectories: true)
        try Data("on \(kind)\n".utf8).write(to: URL(fileURLWithPath: source + "/srv/hello.txt"))
        let image = folder + "/\(kind).img", fs = folder + "/fs.\(kind)"
        let make = kind == "btrfs"
            ? "truncate -s 160M '\(fs)' && mkfs.btrfs -q --rootdir '\(source)' '\(fs)'"
            : """
              printf '/dev/null\\n0 0\\nd--755 0 0\\nsrv d--755 0 0\\nhello.txt ---644 0 0 %s\\n$\\n$\\n' '\(source)/srv/hello.txt' > '\(folder)/proto'
              truncate -s 320M '\(fs)' && mkfs.xfs -q -p '\(folder)/proto' '\(fs)'
              """
        try shell("""
            \(make)
            truncate -s 400M '\(image)' && printf 'label: gpt\\nstart=2048,size=\(400 * 2048 - 4096),type=L\\n' | sfdisk -q '\(image)'
            dd if='\(fs)' of='\(image)' bs=1M seek=1 conv=notrunc,sparse status=none && rm '\(fs)'
            """)
        let directory = folder + "/" + kind
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let mount = try PointMount.mount(try FileDisks([image]), at: directory, options: .init(partitions: true))
        defer { try? mount.unmount(lazy: true) }
        #expect(mount.fileSystems.map { [$0.kind.rawValue, "\($0.mounted)"] } == [[kind, "true"]], "\(mount.fileSystems)")
        let files = PointFiles(mount)
        #expect(try files.list("/\(kind).img/part1/srv").children.map(\.name) == ["hello.txt"])
        let out = folder + "/\(kind)-out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        _ = try files.copy("/\(kind).img/part1/srv/hello.txt", to: out)
        #expect(try String(contentsOfFile: out + "/hello.txt", encoding: .utf8) == "on \(kind)\n")
        let options = try mounted(directory).first { $0.mountPoint.hasSuffix("/part1") }?.options ?? []
        #expect(options.contains("ro") && options.contains("nodev"), "\(options)")
        try mount.unmount()
        #expect(try mounted(directory).isEmpty)
    }

    @Test func aFolderInUseOrNotEmptyIsRefused() throws {
        let directory = folder + "/busy"
        try FileManager.default.createDirectory(atPath: directory + "/x", withIntermediateDirectories: true)
        let disks = try FileDisks([image])
        #expect(throws: CoffreError.self) { try PointMount.mount(disks, at: directory, options: .init()) }
        #expect(disks.closes.withLock { $0 } == 1)
        #expect(throws: CoffreError.self) { try PointMount.clear(directory) }  // nothing mounted
    }
}
