#if Libvirt
@testable import CoffreLibvirt
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

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

#endif
