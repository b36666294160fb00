#if Libvirt
import CoffreCore
import Foundation
import Testing
@testable import CoffreLibvirt

/// Parsing and mapping that need no libvirt host.
@Suite struct DomainXMLTests {
    static let xml = """
    <domain type='kvm'>
      <name>web</name>
      <metadata>
        <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
          <libosinfo:os id="http://microsoft.com/win/2k22"/>
        </libosinfo:libosinfo>
      </metadata>
      <devices>
        <disk type='file' device='cdrom'><source file='/iso/setup.iso'/><target dev='sda' bus='sata'/><readonly/></disk>
        <disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='/dev/vg/data'/><target dev='vdb' bus='virtio'/><shareable/></disk>
        <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/var/lib/libvirt/images/web.qcow2'/><target dev='vda' bus='virtio'/><boot order='1'/></disk>
        <disk type='network' device='disk'><driver name='qemu' type='raw'/><source protocol='rbd' name='pool/img'/><target dev='vdc' bus='virtio'/></disk>
        <disk type='block' device='lun'><source dev='/dev/sdz'/><target dev='sdb' bus='scsi'/></disk>
        <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
      </devices>
    </domain>
    """

    @Test func disksBootDiskFirstWithoutCDROMs() throws {
        let parsed = try DomainXML(Self.xml)
        #expect(parsed.disks.map(\.target) == ["vda", "vdb", "vdc"])
        #expect(parsed.disks[0] == DomainDisk(target: "vda", type: "file", source: "/var/lib/libvirt/images/web.qcow2",
                                              format: "qcow2", bus: "virtio", bootOrder: 1))
        #expect(parsed.disks[1].source == "/dev/vg/data")
        #expect(parsed.disks[1].isShareable)
        #expect(parsed.disks[2].source == "rbd:pool/img")
        #expect(parsed.unsupportedDisks == ["the disk sdb is a SCSI LUN passed through to the guest"])
        #expect(parsed.hasGuestAgentChannel)
        #expect(parsed.osinfoID == "http://microsoft.com/win/2k22")
    }

    @Test func notADomain() {
        #expect(throws: CoffreError.self) { try DomainXML("<network><name>default</name></network>") }
        #expect(throws: CoffreError.self) { try DomainXML("not xml") }
    }

    @Test func discoveredVMSaysWhatCannotBeBackedUp() throws {
        var disks = try DomainXML(Self.xml).disks
        disks[0].capacity = 10 << 30
        disks[1].capacity = 1 << 30
        let description = DomainDescription(name: "web", uuid: "u", state: .shutOff, isPersistent: false, disks: disks,
                                            hasGuestAgentChannel: true, osinfoID: "http://microsoft.com/win/2k22", xml: "")
        let vm = LibvirtDiscovery.makeVM(description, unsupportedDisks: [], cloudService: "host1", region: "eu")
        #expect(vm.key == VMKey(cloudService: "host1", name: "web"))
        #expect(vm.osType == "windows")
        #expect(vm.powerState == .stopped)
        #expect(vm.disks == [VirtualDisk(name: "vda", size: 10 << 30, isOSDisk: true),
                             VirtualDisk(name: "vdb", size: 1 << 30, isOSDisk: false),
                             VirtualDisk(name: "vdc", size: 0, isOSDisk: false)])
        #expect(vm.unsupportedFeatures.count == 3)
        #expect(vm.unsupportedFeatures.contains { $0.contains("transient") })
        #expect(vm.unsupportedFeatures.contains { $0.contains("vdb is shared") })
        #expect(vm.unsupportedFeatures.contains { $0.contains("size of disk vdc") })
    }

    @Test func qcow2HeaderAndRawSizes() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("coffre-diskimage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var header = Data(DiskImage.qcow2Magic + [0, 0, 0, 3] + [UInt8](repeating: 0, count: 16))
        withUnsafeBytes(of: UInt64(5 << 30).bigEndian) { header.append(contentsOf: $0) }
        header.append(Data(count: 480))
        try header.write(to: folder.appendingPathComponent("a.qcow2"))
        #expect(DiskImage.virtualSize(path: folder.appendingPathComponent("a.qcow2").path, format: "qcow2") == 5 << 30)
        try Data(count: 12345).write(to: folder.appendingPathComponent("b.img"))
        #expect(DiskImage.virtualSize(path: folder.appendingPathComponent("b.img").path, format: "raw") == 12345)
        #expect(DiskImage.virtualSize(path: folder.appendingPathComponent("b.img").path, format: "vmdk") == nil)
        #expect(DiskImage.virtualSize(path: folder.appendingPathComponent("missing").path, format: nil) == nil)
    }
}
#endif
