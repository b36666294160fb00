#if Libvirt
@testable import CoffreLibvirt
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

let sample = """
<domain type='qemu'>
  <name>web01</name>
  <uuid>6d1c8d6e-2b7b-4b8e-9b52-0f1d7c3a9e11</uuid>
  <memory unit='MiB'>256</memory>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/var/lib/vm/web01.qcow2'/>
      <backingStore type='file'><format type='qcow2'/><source file='/base.qcow2'/></backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='block' device='disk'>
      <source dev='/dev/vg/data'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/iso/debian.iso'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <interface type='network'><mac address='52:54:00:12:34:56'/><source network='default'/></interface>
    <serial type='unix'><source mode='bind' path='/tmp/hv/serial.sock'/><target port='0'/></serial>
    <channel type='unix'><source mode='bind' path='/tmp/hv/qga.sock'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
  </devices>
</domain>
"""

@Test func pullBackupDocument() {
    let xml = BackupXML.pull(socket: "/run/coffre/nbd-j1.sock",
                             disks: [.init(target: "vda", scratch: "/s/j1-vda.qcow2")], excluded: ["vdb"], since: "coffre-j0")
    #expect(xml.contains("<domainbackup mode='pull'>"))
    #expect(xml.contains("<incremental>coffre-j0</incremental>"))
    #expect(xml.contains("<server transport='unix' socket='/run/coffre/nbd-j1.sock'/>"))
    #expect(xml.contains("<disk name='vda' backup='yes' type='file'><scratch file='/s/j1-vda.qcow2'/></disk>"))
    #expect(xml.contains("<disk name='vdb' backup='no'/>"))
    #expect(BackupXML.pull(socket: "/s", disks: [], excluded: [], since: nil).contains("incremental") == false)
    #expect(BackupXML.escape("a'b<&>") == "a&apos;b&lt;&amp;&gt;")
    _ = try? XMLDocument(xmlString: xml)
}

@Test func checkpointDocument() throws {
    let xml = BackupXML.checkpoint(name: "coffre-j1", disks: ["vda"], excluded: ["vdb"])
    let doc = try XMLDocument(xmlString: xml)
    #expect(doc.rootElement()?.elements(forName: "name").first?.stringValue == "coffre-j1")
    #expect(xml.contains("<disk name='vda' checkpoint='bitmap'/>") && xml.contains("<disk name='vdb' checkpoint='no'/>"))
}

@Test func newDomainFromOriginal() throws {
    let xml = try RestoreXML.newDomain(from: sample, name: "web01-restored",
                                       files: ["vda": "/r/vda.qcow2", "vdb": "/r/vdb.qcow2"], socketDirectory: "/r",
                                       format: "qcow2")
    let doc = try XMLDocument(xmlString: xml)
    let root = try #require(doc.rootElement())
    #expect(root.elements(forName: "name").first?.stringValue == "web01-restored")
    #expect(root.elements(forName: "uuid").isEmpty)
    let disks = root.elements(forName: "devices")[0].elements(forName: "disk")
    let vda = disks[0], vdb = disks[1], cdrom = disks[2]
    #expect(vda.elements(forName: "source").first?.attribute(forName: "file")?.stringValue == "/r/vda.qcow2")
    #expect(vda.elements(forName: "driver").first?.attribute(forName: "type")?.stringValue == "qcow2")
    #expect(vda.elements(forName: "driver").first?.attribute(forName: "cache")?.stringValue == "none")
    #expect(vda.elements(forName: "backingStore").isEmpty)
    #expect(vdb.attribute(forName: "type")?.stringValue == "file")
    #expect(vdb.elements(forName: "source").first?.attribute(forName: "file")?.stringValue == "/r/vdb.qcow2")
    #expect(vdb.elements(forName: "source").first?.attribute(forName: "dev") == nil)
    #expect(vdb.elements(forName: "driver").first?.attribute(forName: "type")?.stringValue == "qcow2")
    #expect(cdrom.elements(forName: "source").first?.attribute(forName: "file")?.stringValue == "/iso/debian.iso")
    #expect(!xml.contains("52:54:00:12:34:56"))
    #expect(xml.contains("/r/web01-restored-serial.sock") && xml.contains("/r/web01-restored-qga.sock"))
    #expect(throws: RestoreXMLError.self) {
        try RestoreXML.newDomain(from: sample, name: "x", files: ["vdz": "/r/z"], socketDirectory: "/r", format: "qcow2")
    }
}
#endif
