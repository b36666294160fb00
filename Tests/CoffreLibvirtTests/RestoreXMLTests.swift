#if Libvirt
import CoffreCore
@testable import CoffreLibvirt
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// Definitions a restore as a new VM copies: none of the original's per-domain paths, names,
/// addresses or devices may survive, except the ones docs/libvirt.md documents as shared.
@Suite struct RestoreXMLTests {
    /// A Debian server as virt-install defines it: UEFI, a pty serial console logging to a file,
    /// the agent's socket, a VNC display on a fixed port, an emulated TPM.
    static let web = """
<domain type='kvm'>
  <name>web</name>
  <uuid>6d1c8d6e-2b7b-4b8e-9b52-0f1d7c3a9e11</uuid>
  <genid>0b1f6e0c-8b45-4a7c-9d3e-5a2f1c9e7d10</genid>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://debian.org/debian/12"/>
    </libosinfo:libosinfo>
  </metadata>
  <memory unit='KiB'>2097152</memory>
  <vcpu placement='static'>2</vcpu>
  <sysinfo type='smbios'>
    <system>
      <entry name='manufacturer'>Coffre</entry>
      <entry name='uuid'>6d1c8d6e-2b7b-4b8e-9b52-0f1d7c3a9e11</entry>
    </system>
  </sysinfo>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/libvirt/qemu/nvram/web_VARS.fd</nvram>
    <smbios mode='sysinfo'/>
  </os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='/var/lib/vms/web.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native'/>
      <source dev='/dev/vg0/web-data'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/iso/debian-12.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <controller type='usb' index='0' model='qemu-xhci'/>
    <interface type='network'>
      <mac address='52:54:00:12:34:56'/>
      <source network='default'/>
      <target dev='vnet3'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'>
      <log file='/var/lib/vms/web.console.log' append='on'/>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
    </serial>
    <console type='pty'>
      <log file='/var/lib/vms/web.console.log' append='on'/>
      <target type='serial' port='0'/>
    </console>
    <channel type='unix'>
      <source mode='bind' path='/var/lib/libvirt/qemu/channel/target/web.org.qemu.guest_agent.0'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <channel type='spicevmc'>
      <target type='virtio' name='com.redhat.spice.0'/>
    </channel>
    <input type='tablet' bus='usb'/>
    <tpm model='tpm-crb'>
      <backend type='emulator' version='2.0'/>
    </tpm>
    <graphics type='vnc' port='5901' autoport='no' listen='127.0.0.1'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <video><model type='virtio' heads='1' primary='yes'/></video>
    <memballoon model='virtio'/>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
    </rng>
  </devices>
</domain>
"""

    /// Everything else that names a host file or holds a host resource.
    static let odd = """
<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>odd</name>
  <uuid>11111111-2222-3333-4444-555555555555</uuid>
  <memory unit='MiB'>1024</memory>
  <maxMemory slots='4' unit='MiB'>4096</maxMemory>
  <vcpu>1</vcpu>
  <resource><partition>/machine</partition></resource>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
    <nvram type='file' template='/usr/share/OVMF/OVMF_VARS_4M.fd'>
      <source file='/srv/vms/odd/VARS.fd'/>
    </nvram>
  </os>
  <cpu><numa><cell id='0' cpus='0' memory='1024' unit='MiB'/></numa></cpu>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/srv/vms/odd/os.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/srv/vms/odd/scratch.qcow2'/>
      <target dev='vdc' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/srv/shared/cluster.img'/>
      <target dev='vdd' bus='virtio'/>
      <shareable/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='rbd' name='pool/odd-data'>
        <host name='ceph-mon' port='6789'/>
      </source>
      <target dev='vde' bus='virtio'/>
    </disk>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='raw'/>
      <source pool='default' volume='odd-logs'/>
      <target dev='vdf' bus='virtio'/>
    </disk>
    <interface type='ethernet'>
      <mac address='52:54:00:aa:bb:cc'/>
      <target dev='tap-odd' managed='no'/>
      <model type='virtio'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:aa:bb:cd'/>
      <source bridge='br0'/>
      <target dev='odd-br'/>
    </interface>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x03' slot='0x00' function='0x1'/></source>
    </hostdev>
    <serial type='file'>
      <source path='/srv/vms/odd/serial0.log'/>
      <target port='0'/>
    </serial>
    <serial type='pipe'>
      <source path='/srv/vms/odd/pipe'/>
      <target port='1'/>
    </serial>
    <serial type='tcp'>
      <source mode='bind' host='127.0.0.1' service='4555'/>
      <protocol type='telnet'/>
      <target port='2'/>
    </serial>
    <serial type='unix'>
      <source mode='bind' path='/srv/vms/odd/serial.sock'/>
      <log file='/srv/vms/odd/serial3.log'/>
      <target port='3'/>
    </serial>
    <channel type='unix'>
      <source mode='connect' path='/run/monitoring/agent.sock'/>
      <target type='virtio' name='org.example.monitor'/>
    </channel>
    <channel type='unix'>
      <source mode='bind' path='/srv/vms/odd/qga.sock'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <filesystem type='mount' accessmode='passthrough'>
      <driver type='virtiofs' queue='1024'/>
      <source socket='/run/virtiofsd/odd.sock'/>
      <target dir='data'/>
    </filesystem>
    <filesystem type='mount' accessmode='mapped'>
      <source dir='/srv/share/docs'/>
      <target dir='docs'/>
      <readonly/>
    </filesystem>
    <input type='evdev'>
      <source dev='/dev/input/event2'/>
    </input>
    <graphics type='vnc'>
      <listen type='socket' socket='/srv/vms/odd/vnc.sock'/>
    </graphics>
    <vsock model='virtio'>
      <cid auto='no' address='7'/>
    </vsock>
    <memory model='nvdimm'>
      <source><path>/srv/vms/odd/nvdimm.img</path></source>
      <target><size unit='MiB'>512</size><node>0</node><label><size unit='KiB'>128</size></label></target>
    </memory>
    <shmem name='ivshmem-shared'>
      <model type='ivshmem-doorbell'/>
      <server path='/run/ivshmem/doorbell.sock'/>
    </shmem>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-fw_cfg'/>
    <qemu:arg value='name=opt/coffre,file=/srv/vms/odd/fwcfg.bin'/>
  </qemu:commandline>
</domain>
"""

    static let restored = "/srv/restored"

    static func copy(_ original: String, as name: String, disks: [String]) throws -> RestoreXML.Result {
        try RestoreXML.newDomain(from: original, name: name,
                                 files: Dictionary(uniqueKeysWithValues: disks.map { ($0, "\(restored)/\(name)/\($0).qcow2") }),
                                 directory: "\(restored)/\(name)", format: "qcow2")
    }

    /// The original's paths still named by the copy.
    static func survivors(_ original: String, _ result: RestoreXML.Result) throws -> Set<String> {
        try paths(result.xml).intersection(paths(original))
    }

    static func paths(_ xml: String) throws -> Set<String> {
        RestoreXML.hostPaths(in: try #require(try XMLDocument(xmlString: xml).rootElement()))
    }

    static func root(_ xml: String) throws -> XMLElement {
        try #require(try XMLDocument(xmlString: xml).rootElement())
    }

    /// libvirt's own schema accepts the copy (`virt-xml-validate`, from libvirt-clients and libxml2-utils).
    static func validate(_ xml: String) throws {
        let file = NSTemporaryDirectory() + "coffre-restore-\(UUID().uuidString).xml"
        try xml.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        try run("/usr/bin/virt-xml-validate", file, "domain")
    }

    @Test("a pty serial console's log file, the agent's socket and the UEFI variables move to the copy's folder")
    func webServer() throws {
        let result = try Self.copy(Self.web, as: "web-copy", disks: ["vda", "vdb"])
        let folder = "\(Self.restored)/web-copy"
        let root = try Self.root(result.xml)
        #expect(root.elements(forName: "name").first?.stringValue == "web-copy")
        #expect(root.elements(forName: "uuid").isEmpty)
        #expect(root.elements(forName: "genid").first?.stringValue == "")
        #expect(!result.xml.contains("6d1c8d6e-2b7b-4b8e-9b52-0f1d7c3a9e11"), "the SMBIOS UUID would become the domain's")
        #expect(!result.xml.contains("52:54:00:12:34:56") && !result.xml.contains("vnet3"))
        let devices = try #require(root.elements(forName: "devices").first)
        let logs = (devices.elements(forName: "serial") + devices.elements(forName: "console"))
            .compactMap { $0.elements(forName: "log").first?.attribute(forName: "file")?.stringValue }
        #expect(logs == ["\(folder)/web.console.log", "\(folder)/web.console.log"])
        #expect(result.xml.contains("path='\(folder)/web.org.qemu.guest_agent.0'") || result.xml.contains("path=\"\(folder)/web.org.qemu.guest_agent.0\""))
        let nvram = try #require(root.elements(forName: "os").first?.elements(forName: "nvram").first)
        #expect(nvram.stringValue == "\(folder)/web_VARS.fd")
        #expect(result.copies == [.init(from: "/var/lib/libvirt/qemu/nvram/web_VARS.fd", to: "\(folder)/web_VARS.fd")])
        let vnc = try #require(devices.elements(forName: "graphics").first)
        #expect(vnc.attribute(forName: "port") == nil && vnc.attribute(forName: "autoport")?.stringValue == "yes")
        let disks = devices.elements(forName: "disk")
        #expect(disks.map { $0.elements(forName: "source").first?.attribute(forName: "file")?.stringValue }
                == ["\(folder)/vda.qcow2", "\(folder)/vdb.qcow2", "/var/lib/iso/debian-12.iso"])
        #expect(try Self.survivors(Self.web, result) == [
            "/usr/bin/qemu-system-x86_64", "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd",
            "/var/lib/iso/debian-12.iso", "/dev/urandom",
        ])
        #expect(result.shared == (try Self.survivors(Self.web, result)))
        #expect(result.notes.contains { $0.contains("port 5901") })
        #expect(result.notes.contains { $0.contains("TPM starts empty") })
        #expect(!result.notes.contains { $0.contains("named as in the original") }, "\(result.notes)")
        try Self.validate(result.xml)
    }

    @Test("two copies of one point share no per-domain path with each other either")
    func twoCopies() throws {
        let first = try Self.copy(Self.web, as: "web-a", disks: ["vda", "vdb"])
        let second = try Self.copy(Self.web, as: "web-b", disks: ["vda", "vdb"])
        let common = try Self.paths(first.xml).intersection(try Self.paths(second.xml))
        #expect(common == first.shared, "\(common.subtracting(first.shared))")
    }

    @Test("files, pipes, ports, host devices, sockets of others' services, a disk the point does not hold")
    func oddDevices() throws {
        let result = try Self.copy(Self.odd, as: "odd-copy", disks: ["vda"])
        let folder = "\(Self.restored)/odd-copy"
        #expect(try Self.survivors(Self.odd, result) == [
            "/usr/bin/qemu-system-x86_64", "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd",
            "/srv/shared/cluster.img", "/run/monitoring/agent.sock", "/srv/share/docs", "/machine",
            "/run/ivshmem/doorbell.sock",
        ])
        #expect(result.moved == [
            "/srv/vms/odd/VARS.fd": "\(folder)/VARS.fd", "/srv/vms/odd/serial0.log": "\(folder)/serial0.log",
            "/srv/vms/odd/serial.sock": "\(folder)/serial.sock", "/srv/vms/odd/serial3.log": "\(folder)/serial3.log",
            "/srv/vms/odd/qga.sock": "\(folder)/qga.sock", "/srv/vms/odd/vnc.sock": "\(folder)/vnc.sock",
        ])
        let root = try Self.root(result.xml)
        let devices = try #require(root.elements(forName: "devices").first)
        #expect(devices.elements(forName: "disk").compactMap { $0.elements(forName: "target").first?.attribute(forName: "dev")?.stringValue } == ["vda", "vdd"])
        #expect(devices.elements(forName: "hostdev").isEmpty && devices.elements(forName: "input").isEmpty)
        #expect(devices.elements(forName: "interface").count == 1)
        #expect(devices.elements(forName: "interface").first?.elements(forName: "target").isEmpty == true)
        let serials = devices.elements(forName: "serial").map { $0.attribute(forName: "type")?.stringValue }
        #expect(serials == ["file", "pty", "pty", "unix"])
        #expect(!result.xml.contains("4555") && !result.xml.contains("telnet"))
        #expect(devices.elements(forName: "filesystem").count == 1)
        #expect(devices.elements(forName: "memory").isEmpty)
        let cid = try #require(devices.elements(forName: "vsock").first?.elements(forName: "cid").first)
        #expect(cid.attribute(forName: "auto")?.stringValue == "yes" && cid.attribute(forName: "address") == nil)
        for said in ["vdc", "vde", "pool/odd-data", "vdf", "odd-logs", "0x03", "tap-odd", "pipe", "4555", "virtiofsd",
                     "/dev/input/event2", "CID 7", "nvdimm.img", "qemu:commandline"] {
            #expect(result.notes.contains { $0.contains(said) }, "no note says \(said): \(result.notes)")
        }
        #expect(!result.notes.contains { $0.contains("named as in the original") }, "\(result.notes)")
        try Self.validate(result.xml)
    }

    @Test("isolated for a boot check: no network, no vsock, no other disk, folder, memory or host service; an agent channel")
    func isolated() throws {
        let options = RestoreXML.Options(nbdSocket: "/s/nbd.sock", isolated: true)
        let result = try RestoreXML.newDomain(from: Self.odd, name: "coffre-verify-1", files: ["vda": "/s/vda.overlay.qcow2"],
                                              directory: "/s", format: "qcow2", options: options)
        let devices = try #require(try Self.root(result.xml).elements(forName: "devices").first)
        for gone in ["interface", "filesystem", "shmem", "hostdev", "vsock", "memory"] {
            #expect(devices.elements(forName: gone).isEmpty, "\(gone) left in an isolated VM")
        }
        #expect(devices.elements(forName: "disk").count == 1, "only the point's own disk")
        let channels = devices.elements(forName: "channel").compactMap { $0.elements(forName: "target").first?.attribute(forName: "name")?.stringValue }
        #expect(channels == ["org.qemu.guest_agent.0"], "the monitoring channel to a host service is gone: \(channels)")
        // Its disk is the overlay on the NBD export, and pauses the guest on a read error.
        let disk = try #require(devices.elements(forName: "disk").first)
        let driver = try #require(disk.elements(forName: "driver").first)
        #expect(driver.attribute(forName: "rerror_policy")?.stringValue == "stop" && driver.attribute(forName: "error_policy")?.stringValue == "stop")
        let backing = try #require(disk.elements(forName: "backingStore").first?.elements(forName: "source").first)
        #expect(backing.attribute(forName: "protocol")?.stringValue == "nbd" && backing.attribute(forName: "name")?.stringValue == "vda")
        #expect(backing.elements(forName: "host").first?.attribute(forName: "socket")?.stringValue == "/s/nbd.sock")
        try Self.validate(result.xml)

        // The web server has no agent channel of its own to lose, but one is added when missing.
        let bare = Self.web.replacingOccurrences(of: "org.qemu.guest_agent.0", with: "org.example.other")
        let added = try RestoreXML.newDomain(from: bare, name: "coffre-verify-2", files: ["vda": "/s/a", "vdb": "/s/b"],
                                             directory: "/s", format: "qcow2", options: options)
        #expect(added.xml.contains("org.qemu.guest_agent.0") && added.notes.contains { $0.contains("guest agent channel was added") })
        try Self.validate(added.xml)
    }

    @Test("after an instant restore's switch, the disks get the original's error policies back, the rest kept")
    func errorPoliciesPutBack() throws {
        let original = Self.web.replacingOccurrences(of: "<driver name='qemu' type='qcow2' discard='unmap'/>",
                                                     with: "<driver name='qemu' type='qcow2' discard='unmap' error_policy='report'/>")
        let running = try RestoreXML.newDomain(from: original, name: "web-copy", files: ["vda": "/r/vda.qcow2", "vdb": "/r/vdb.qcow2"],
                                               directory: "/r", format: "qcow2", options: .init(nbdSocket: "/s/nbd.sock"))
        let back = try RestoreXML.withErrorPolicies(of: original, on: running.xml, disks: ["vda", "vdb"])
        let drivers = try Self.root(back).elements(forName: "devices")[0].elements(forName: "disk").prefix(2)
            .map { $0.elements(forName: "driver")[0] }
        #expect(drivers[0].attribute(forName: "error_policy")?.stringValue == "report" && drivers[0].attribute(forName: "rerror_policy") == nil)
        #expect(drivers[1].attribute(forName: "error_policy") == nil && drivers[1].attribute(forName: "rerror_policy") == nil)
        #expect(drivers[0].attribute(forName: "discard")?.stringValue == "unmap")
    }

    @Test("a path in an element Coffre does not rewrite is named in a note")
    func unknownElement() throws {
        let original = Self.web.replacingOccurrences(of: "<smbios mode='sysinfo'/>",
                                  with: "<smbios mode='sysinfo'/>\n    <acpi><table type='slic'>/var/lib/vms/web-slic.dat</table></acpi>")
        let result = try Self.copy(original, as: "web-copy", disks: ["vda", "vdb"])
        #expect(result.notes.contains { $0.contains("/var/lib/vms/web-slic.dat") && $0.contains("named as in the original") })
        try Self.validate(result.xml)
    }

    @Test("a socket path too long for sun_path gets a short name, or the restore is refused")
    func longSocketPaths() throws {
        let long = "/srv/" + String(repeating: "d", count: 95)  // 100 bytes: "/serial.sock" would make 112
        let result = try RestoreXML.newDomain(from: Self.odd, name: "odd-copy", files: ["vda": long + "/vda.qcow2"],
                                              directory: long, format: "qcow2")
        for socket in ["/srv/vms/odd/serial.sock", "/srv/vms/odd/qga.sock", "/srv/vms/odd/vnc.sock"] {
            let moved = try #require(result.moved[socket])
            #expect(moved.hasPrefix(long + "/") && moved.utf8.count <= RestoreXML.socketPathLimit, "\(moved)")
        }
        #expect(Set(result.moved.values).count == result.moved.count)
        #expect(result.moved["/srv/vms/odd/serial0.log"] == long + "/serial0.log", "files other than sockets keep their names")
        let tooLong = "/srv/" + String(repeating: "d", count: 110)
        #expect(throws: CoffreError.self) {
            _ = try RestoreXML.newDomain(from: Self.odd, name: "odd-copy", files: ["vda": tooLong + "/vda.qcow2"],
                                         directory: tooLong, format: "qcow2")
        }
    }

    @Test("a block disk becomes the restored file, a CD-ROM stays, a missing disk or a non-domain is refused")
    func disks() throws {
        let result = try RestoreXML.newDomain(from: Self.blockAndCDROM, name: "web01-restored",
                                              files: ["vda": "/r/vda.qcow2", "vdb": "/r/vdb.qcow2"], directory: "/r",
                                              format: "qcow2")
        let disks = try Self.root(result.xml).elements(forName: "devices")[0].elements(forName: "disk")
        let vda = disks[0], vdb = disks[1], cdrom = disks[2]
        #expect(vda.elements(forName: "source").first?.attribute(forName: "file")?.stringValue == "/r/vda.qcow2")
        #expect(vda.elements(forName: "driver").first?.attribute(forName: "type")?.stringValue == "qcow2")
        #expect(vda.elements(forName: "driver").first?.attribute(forName: "cache")?.stringValue == "none")
        #expect(vda.elements(forName: "backingStore").isEmpty)
        #expect(vdb.attribute(forName: "type")?.stringValue == "file")
        #expect(vdb.elements(forName: "source").first?.attribute(forName: "file")?.stringValue == "/r/vdb.qcow2")
        #expect(vdb.elements(forName: "source").first?.attribute(forName: "dev") == nil)
        #expect(cdrom.elements(forName: "source").first?.attribute(forName: "file")?.stringValue == "/iso/debian.iso")
        #expect(result.moved == ["/tmp/hv/serial.sock": "/r/serial.sock", "/tmp/hv/qga.sock": "/r/qga.sock"])
        let missing = #expect(throws: CoffreError.self) {
            try RestoreXML.newDomain(from: Self.blockAndCDROM, name: "x", files: ["vdz": "/r/z"], directory: "/r", format: "qcow2")
        }
        #expect(missing?.code == .restoreNotSupported && missing?.message.contains("vdz") == true)
        #expect(throws: CoffreError.self) {
            try RestoreXML.newDomain(from: "<network/>", name: "x", files: [:], directory: "/r", format: "qcow2")
        }
    }

    static let blockAndCDROM = """
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
}
#endif
