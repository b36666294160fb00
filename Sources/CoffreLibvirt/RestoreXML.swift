#if Libvirt
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// A copy of a domain's definition for a restored VM (X1 "as a new VM").
enum RestoreXML {
    /// The original definition with: the new `name`, no `<uuid>` (libvirt makes one), every
    /// backed-up disk pointing at its restored file, no MAC addresses (libvirt makes new
    /// ones: two VMs with one MAC break the network), and Unix socket paths of serial ports,
    /// consoles and channels moved next to the disks (the original VM holds the old ones).
    ///
    /// - Parameters:
    ///   - files: restored file per disk target (`vda` → `/var/lib/…/vda.qcow2`).
    ///   - socketDirectory: where the new domain's Unix sockets go.
    ///   - format: the restored files' format.
    static func newDomain(
        from original: String, name: String, files: [String: String], socketDirectory: String, format: String
    ) throws -> String {
        let document = try XMLDocument(xmlString: original, options: [.nodePreserveWhitespace])
        guard let root = document.rootElement(), root.name == "domain" else {
            throw RestoreXMLError("the original definition is not a <domain>")
        }
        guard let nameElement = root.elements(forName: "name").first else { throw RestoreXMLError("the original has no <name>") }
        nameElement.stringValue = name
        for uuid in root.elements(forName: "uuid") { uuid.detach() }
        guard let devices = root.elements(forName: "devices").first else { throw RestoreXMLError("the original has no <devices>") }

        var pending = Set(files.keys)
        for disk in devices.elements(forName: "disk") {
            guard let target = disk.elements(forName: "target").first?.attribute(forName: "dev")?.stringValue,
                  let file = files[target] else { continue }
            pending.remove(target)
            disk.setAttributesWith(["type": "file", "device": disk.attribute(forName: "device")?.stringValue ?? "disk"])
            for child in disk.elements(forName: "source") + disk.elements(forName: "backingStore") + disk.elements(forName: "auth") {
                child.detach()
            }
            let source = XMLElement(name: "source")
            source.addAttribute(XMLNode.attribute(withName: "file", stringValue: file) as! XMLNode)
            let driver = disk.elements(forName: "driver").first ?? {
                let driver = XMLElement(name: "driver")
                driver.addAttribute(XMLNode.attribute(withName: "name", stringValue: "qemu") as! XMLNode)
                disk.insertChild(driver, at: 0)
                return driver
            }()
            driver.removeAttribute(forName: "type")
            driver.addAttribute(XMLNode.attribute(withName: "type", stringValue: format) as! XMLNode)
            disk.insertChild(source, at: driver.index + 1)
        }
        guard pending.isEmpty else {
            throw RestoreXMLError("the original definition has no disk \(pending.sorted().joined(separator: ", "))")
        }
        for interface in devices.elements(forName: "interface") {
            for mac in interface.elements(forName: "mac") { mac.detach() }
        }
        for kind in ["serial", "console", "channel", "parallel"] {
            for device in devices.elements(forName: kind) where device.attribute(forName: "type")?.stringValue == "unix" {
                for source in device.elements(forName: "source") {
                    guard let path = source.attribute(forName: "path")?.stringValue else { continue }
                    let moved = socketDirectory + "/" + name + "-" + (path as NSString).lastPathComponent
                    source.removeAttribute(forName: "path")
                    source.addAttribute(XMLNode.attribute(withName: "path", stringValue: moved) as! XMLNode)
                }
            }
        }
        return document.xmlString
    }
}

struct RestoreXMLError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
#endif
