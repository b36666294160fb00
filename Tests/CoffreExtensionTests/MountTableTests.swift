import CoffreSystem
@testable import CoffreExtension
import Testing

@Suite("Which file systems a prepare freezes")
struct MountTableTests {
    static let mountinfo = """
    22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/vda2 rw,errors=remount-ro
    23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
    24 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw,size=4000k
    25 22 259:3 / /var rw,relatime shared:3 - xfs /dev/vda3 rw,attr2
    26 22 0:30 / /tmp rw,nosuid,nodev shared:4 - tmpfs tmpfs rw
    27 22 259:4 / /data/my\\040disk rw,relatime shared:5 - btrfs /dev/vda4 rw,space_cache=v2
    28 22 259:4 /sub /srv/sub rw,relatime shared:6 - btrfs /dev/vda4 rw,space_cache=v2
    29 22 7:0 / /snap/core/1 ro,nodev,relatime shared:7 - squashfs /dev/loop0 ro
    30 22 7:1 / /images/mounted rw,relatime shared:8 - ext4 /dev/loop1 rw
    31 22 259:5 / /mnt/ro ro,relatime shared:9 - ext4 /dev/vda5 ro
    32 22 259:6 / /boot rw,relatime shared:10 - ext3 /dev/vda6 rw
    33 22 259:7 / /scratch rw,relatime shared:11 - ext4 /dev/vda7 rw
    34 22 259:8 / /vm1 rw,relatime shared:13 - ext4 /dev/vdb1 rw
    35 34 259:9 / /vm1/data rw,relatime shared:14 - xfs /dev/vdb2 rw
    36 34 7:2 / /vm1/image rw,relatime shared:15 - ext4 /dev/loop2 rw
    37 22 259:10 / /hidden rw,relatime shared:16 - ext4 /dev/vdc1 rw
    38 22 0:40 / /hidden rw,relatime shared:17 - tmpfs tmpfs rw
    """

    @Test("mountinfo lines are parsed, octal escapes decoded")
    func parse() {
        let mounts = MountInfo.parse(Self.mountinfo + "\nnot a mountinfo line\n")
        #expect(mounts.count == 17)
        #expect(mounts[0] == Mount(device: "259:2", mountPoint: "/", fileSystemType: "ext4", source: "/dev/vda2", options: ["rw", "relatime"], id: 22, parent: 1))
        #expect(mounts.contains { $0.mountPoint == "/data/my disk" && $0.fileSystemType == "btrfs" })
        #expect(mounts.first { $0.mountPoint == "/images/mounted" }?.isLoopDevice == true)
    }

    @Test("A real guest: ext3/4, xfs, btrfs; no loop, tmpfs, read-only, hidden or skipped mounts; one per device; / last")
    func systemRoot() {
        let chosen = MountTable.selectForFreeze(MountInfo.parse(Self.mountinfo), paths: GuestPaths(root: "/"), skip: ["/scratch/"])
        // /data/my disk and /srv/sub are one btrfs: frozen once, through the shorter path.
        #expect(chosen.map(\.mountPoint) == ["/srv/sub", "/vm1/data", "/boot", "/var", "/vm1", "/"])
        #expect(chosen.last?.mountPoint == "/")
        #expect(!chosen.contains { $0.isLoopDevice })
    }

    @Test("Under another root: only its mounts, loop devices included, deepest first")
    func guestRoot() {
        let chosen = MountTable.selectForFreeze(MountInfo.parse(Self.mountinfo), paths: GuestPaths(root: "/vm1/"), skip: [])
        #expect(chosen.map(\.mountPoint) == ["/vm1/data", "/vm1/image", "/vm1"])
        let skipping = MountTable.selectForFreeze(MountInfo.parse(Self.mountinfo), paths: GuestPaths(root: "/vm1"), skip: ["/image"])
        #expect(skipping.map(\.mountPoint) == ["/vm1/data", "/vm1"])
    }

    @Test("A root with no mounts under it freezes nothing")
    func nothingUnderRoot() {
        #expect(MountTable.selectForFreeze(MountInfo.parse(Self.mountinfo), paths: GuestPaths(root: "/tmp/empty"), skip: []).isEmpty)
    }

    @Test("Guest and host paths convert both ways")
    func paths() {
        let paths = GuestPaths(root: "/srv/vm1/")
        #expect(paths.root == "/srv/vm1")
        #expect(paths.host("/etc/coffre") == "/srv/vm1/etc/coffre")
        #expect(paths.host("/") == "/srv/vm1")
        #expect(paths.guest("/srv/vm1/mnt") == "/mnt")
        #expect(paths.guest("/srv/vm1") == "/")
        #expect(paths.guest("/srv/vm10") == nil)
        #expect(GuestPaths().host("/etc/azure") == "/etc/azure")
    }
}
