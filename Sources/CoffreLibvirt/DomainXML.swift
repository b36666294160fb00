#if Libvirt
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import CoffreCore

/// The parts of a libvirt domain definition Coffre reads (`virDomainGetXMLDesc`).
public struct DomainXML: Sendable, Equatable {
    /// `<disk device='disk'>` entries; CD-ROMs, floppies and LUN pass-through are not disks
    /// Coffre backs up (LUNs are listed in `unsupportedDisks`). OS disk first.
    public var disks: [DomainDisk]
    /// Targets of disks Coffre cannot back up, with the reason in words.
    public var unsupportedDisks: [String]
    public var hasGuestAgentChannel: Bool
    public var osinfoID: String?

    /// The agent channel's well-known name.
    public static let guestAgentChannel = "org.qemu.guest_agent.0"

    /// Parses a domain definition.
    /// - Throws: `LibvirtError` when the text is not a domain's XML.
    public init(_ xml: String) throws {
        let document: XMLDocument
        do {
            document = try XMLDocument(xmlString: xml, options: [])
        } catch {
            throw CoffreError.libvirtFailed("parse a domain's XML", detail: "\(error)")
        }
        guard let root = document.rootElement(), root.name == "domain" else {
            throw CoffreError.libvirtFailed("parse a domain's XML", detail: "the root element is not <domain>")
        }
        var disks: [(order: Int, disk: DomainDisk)] = []
        var unsupported: [String] = []
        let devices = root.elements(forName: "devices").first
        for (index, element) in (devices?.elements(forName: "disk") ?? []).enumerated() {
            let device = element.attribute("device") ?? "disk"
            guard let target = element.child("target")?.attribute("dev") else { continue }
            if device == "lun" {
                unsupported.append("the disk \(target) is a SCSI LUN passed through to the guest")
                continue
            }
            guard device == "disk" else { continue }
            let type = element.attribute("type") ?? "file"
            let sourceElement = element.child("source")
            var source: String?
            switch type {
            case "file": source = sourceElement?.attribute("file")
            case "block": source = sourceElement?.attribute("dev")
            case "network":
                source = [sourceElement?.attribute("protocol"), sourceElement?.attribute("name")]
                    .compactMap { $0 }.joined(separator: ":")
            case "volume":
                source = [sourceElement?.attribute("pool"), sourceElement?.attribute("volume")]
                    .compactMap { $0 }.joined(separator: "/")
            default: source = nil
            }
            let disk = DomainDisk(
                target: target, type: type, source: source, format: element.child("driver")?.attribute("type"),
                bus: element.child("target")?.attribute("bus"),
                isShareable: element.child("shareable") != nil, isReadOnly: element.child("readonly") != nil,
                isTransient: element.child("transient") != nil,
                bootOrder: element.child("boot")?.attribute("order").flatMap { Int($0) })
            disks.append((index, disk))
        }
        // The OS disk is the one booted first; without boot orders, the first in the definition.
        disks.sort { ($0.disk.bootOrder ?? Int.max, $0.order) < ($1.disk.bootOrder ?? Int.max, $1.order) }
        self.disks = disks.map(\.disk)
        self.unsupportedDisks = unsupported
        self.hasGuestAgentChannel = (devices?.elements(forName: "channel") ?? []).contains {
            $0.child("target")?.attribute("name") == Self.guestAgentChannel
        }
        // <metadata><libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
        //   <libosinfo:os id="http://debian.org/debian/12"/>
        let metadata = root.elements(forName: "metadata").first
        let osinfo = metadata?.children?.compactMap { $0 as? XMLElement }.first { $0.localName == "libosinfo" }
        self.osinfoID = osinfo?.children?.compactMap { $0 as? XMLElement }
            .first { $0.localName == "os" }?.attribute("id")
    }
}

extension XMLElement {
    fileprivate func attribute(_ name: String) -> String? { attribute(forName: name)?.stringValue }
    fileprivate func child(_ name: String) -> XMLElement? { elements(forName: name).first }
}
#endif
