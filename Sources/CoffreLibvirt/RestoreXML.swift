#if Libvirt
import CoffreCore
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// A copy of a domain's definition for a restored VM (X1 "as a new VM") that starts next to the
/// original and next to every other copy: it shares no name, UUID, MAC, file, socket, fixed
/// port, vsock CID or host device with them. Per-domain files (serial logs, sockets QEMU
/// listens on, output files, UEFI variables) move into the new VM's folder; what cannot be
/// moved (a pipe or a host device the original holds, a tap device made for it) is changed or
/// left out with a note. docs/libvirt.md lists each rule and the paths that stay shared.
enum RestoreXML {
    /// The new definition and what came of making it.
    struct Result: Sendable {
        var xml: String
        /// Devices left out or changed, in words, for the restore job.
        var notes: [String]
        /// Files of the original to copy into the new VM's folder before it is defined (UEFI
        /// variables); a source that no longer exists is skipped (libvirt then starts from its template).
        var copies: [FileCopy]
        /// Host paths both domains name on purpose (firmware, kernels, ISO images, shared folders,
        /// sockets of services they connect to).
        var shared: Set<String>
        /// Original paths and where they went.
        var moved: [String: String]
    }

    struct FileCopy: Sendable, Equatable {
        var from: String
        var to: String
    }

    /// The guest agent's channel name.
    static let guestAgentChannel = DomainXML.guestAgentChannel

    /// Longest Unix socket path (`sun_path` holds 108 bytes with the terminating zero).
    static let socketPathLimit = 107

    /// How the new domain's restored disks are read, and what it may reach.
    struct Options: Sendable {
        /// Each restored file is a qcow2 overlay whose backing is the point's disk of the same
        /// name, exported by the vault's NBD server on this Unix socket (instant restore). An
        /// error reading it pauses the guest (`rerror_policy='stop'`) instead of failing its I/O.
        var nbdSocket: String?
        /// Cut off from everything the original reaches: no network interface, no disk, folder,
        /// shared memory or host service other than its own (a boot verification); a guest agent
        /// channel is added when the original has none.
        var isolated = false
        /// The UUID the domain has already (a redefinition of the same domain); nil: libvirt makes one.
        var uuid: String?
    }

    /// The original definition rewritten for a new domain `name`.
    ///
    /// - Parameters:
    ///   - files: the restored file per disk target (`vda` → `/var/lib/…/web-copy/vda.qcow2`).
    ///   - directory: the new VM's own folder: its disks' folder, where its per-domain files go.
    ///   - format: the restored files' format.
    /// - Throws: `RestoreNotSupported` when the definition is not a domain, lacks a restored
    ///   disk, or a socket path would not fit in `directory`.
    static func newDomain(
        from original: String, name: String, files: [String: String], directory: String, format: String,
        options: Options = Options()
    ) throws -> Result {
        let document: XMLDocument
        do {
            document = try XMLDocument(xmlString: original, options: [.nodePreserveWhitespace])
        } catch {
            throw unusable("it is not XML (\(error))")
        }
        guard let root = document.rootElement(), root.name == "domain" else { throw unusable("its root is not <domain>") }
        guard let devices = root.child("devices") else { throw unusable("it has no <devices>") }
        let originalPaths = hostPaths(in: root)

        var rewrite = Rewrite(name: name, directory: directory, options: options,
                              taken: Set(files.values.map { ($0 as NSString).lastPathComponent }))
        try rewrite.identity(root)
        if let uuid = options.uuid {
            let element = XMLElement(name: "uuid", stringValue: uuid)
            root.insertChild(element, at: (root.elements(forName: "name").first?.index ?? -1) + 1)
        }
        try rewrite.firmware(root)
        try rewrite.disks(devices, files: files, format: format)
        for device in devices.childElements where device.name != "disk" {
            try rewrite.device(device)
        }
        if options.isolated { rewrite.isolate(devices) }
        rewrite.sharedPaths(of: root)
        if root.childElements.contains(where: { $0.localName == "commandline" }) {
            rewrite.notes.append("its <qemu:commandline> is passed on as it is: check its arguments for files of the original")
        }
        // Anything of the original still named, and not shared on purpose: said, never silently shared.
        for path in hostPaths(in: root).intersection(originalPaths).subtracting(rewrite.shared).sorted() {
            rewrite.notes.append("\(path) is named as in the original's definition, in an element Coffre does not rewrite: check that both VMs may use it")
        }
        return Result(xml: document.xmlString, notes: rewrite.notes, copies: rewrite.copies,
                      shared: rewrite.shared.intersection(originalPaths), moved: rewrite.moved)
    }

    /// `current` (libvirt's definition of a restored domain) with the error policies of the
    /// original's disks `disks` put back: an instant restore's overlays paused the guest on a
    /// read error; its own disks behave as the original's did.
    static func withErrorPolicies(of original: String, on current: String, disks: [String]) throws -> String {
        func disk(_ root: XMLElement?, _ target: String) -> XMLElement? {
            root?.child("devices")?.elements(forName: "disk").first { $0.child("target")?["dev"] == target }
        }
        let originalRoot = try XMLDocument(xmlString: original, options: []).rootElement()
        let document = try XMLDocument(xmlString: current, options: [.nodePreserveWhitespace])
        for target in disks {
            guard let driver = disk(document.rootElement(), target)?.child("driver") else { continue }
            let before = disk(originalRoot, target)?.child("driver")
            for policy in ["error_policy", "rerror_policy"] { driver[policy] = before?[policy] }
        }
        return document.xmlString
    }

    /// Every absolute path named by the definition's configuration (attributes and texts that
    /// start with `/`), leaving out free text: `<metadata>`, `<description>`, `<title>`.
    static func hostPaths(in element: XMLElement) -> Set<String> {
        guard !["metadata", "description", "title"].contains(element.localName ?? "") else { return [] }
        var paths = Set<String>()
        func add(_ value: String?) {
            guard let value = value?.trimmingCharacters(in: .whitespacesAndNewlines), value.hasPrefix("/"),
                  !value.contains(where: \.isWhitespace) else { return }
            paths.insert(value)
        }
        for attribute in element.attributes ?? [] { add(attribute.stringValue) }
        for child in element.children ?? [] {
            if let child = child as? XMLElement {
                paths.formUnion(hostPaths(in: child))
            } else if child.kind == .text {
                add(child.stringValue)
            }
        }
        return paths
    }

    static func unusable(_ reason: String) -> CoffreError {
        CoffreError(.restoreNotSupported, "The VM's definition cannot be copied for a new domain: \(reason)",
                    workaround: "Restore the point to a folder (--to DIR) and define the VM from those disks")
    }
}

/// The rules, applied to one document; collects what they did.
private struct Rewrite {
    let name: String
    let directory: String
    let options: RestoreXML.Options
    /// File names in use in `directory` (the disks', then each moved file's).
    var taken: Set<String>
    var moved: [String: String] = [:]
    var shared: Set<String> = []
    var notes: [String] = []
    var copies: [RestoreXML.FileCopy] = []
    /// The disks that are the restored files.
    var ownDisks: [XMLElement] = []

    // MARK: Identity

    /// The new name; no UUID, generation id or SMBIOS UUID (libvirt makes new ones: the SMBIOS
    /// one would otherwise become the domain's UUID, the original's).
    mutating func identity(_ root: XMLElement) throws {
        guard let nameElement = root.child("name") else { throw RestoreXML.unusable("it has no <name>") }
        nameElement.stringValue = name
        for uuid in root.elements(forName: "uuid") { uuid.detach() }
        for genid in root.elements(forName: "genid") { genid.stringValue = "" }
        for system in root.elements(forName: "sysinfo").flatMap({ $0.elements(forName: "system") }) {
            for entry in system.elements(forName: "entry") where entry["name"] == "uuid" { entry.detach() }
        }
    }

    /// UEFI variables (`<nvram>`, or a writable `<loader>`) are the VM's own: copied into its
    /// folder as they are now (the point does not hold them). Read-only firmware, kernels,
    /// initrds and device trees are shared.
    mutating func firmware(_ root: XMLElement) throws {
        guard let os = root.child("os") else { return }
        for nvram in os.elements(forName: "nvram") {
            if let template = nvram["template"] { shared.insert(template) }
            if let source = nvram.child("source"), let file = source["file"] {
                source["file"] = try copy(file)
            } else if let path = nvram.text, path.hasPrefix("/") {
                nvram.stringValue = try copy(path)
            }
        }
        for loader in os.elements(forName: "loader") where loader["readonly"] == "no" {
            if let path = loader.text, path.hasPrefix("/") { loader.stringValue = try copy(path) }
        }
    }

    private mutating func copy(_ path: String) throws -> String {
        let destination = try relocate(path)
        copies.append(.init(from: path, to: destination))
        return destination
    }

    // MARK: Disks

    /// The backed-up disks point at their restored files. Of the others, read-only ones (CD-ROMs,
    /// `<readonly/>`) and `<shareable/>` ones stay shared; a writable disk the point does not
    /// hold is left out: it belongs to the original.
    mutating func disks(_ devices: XMLElement, files: [String: String], format: String) throws {
        var pending = Set(files.keys)
        for disk in devices.elements(forName: "disk") {
            let target = disk.child("target")?["dev"] ?? "?"
            if let file = files[target] {
                ownDisks.append(disk)
                pending.remove(target)
                restored(disk, file: file, format: format, export: target)
                continue
            }
            let device = disk["device"] ?? "disk"
            // An empty drive, read-only media, or a disk made to be shared: kept. Any other
            // source (a file, a block device, an RBD or iSCSI volume, a pool volume) would be
            // written by two VMs: left out.
            guard let source = disk.child("source"), device != "cdrom", disk.child("readonly") == nil,
                  disk.child("shareable") == nil else {
                shared.formUnion(RestoreXML.hostPaths(in: disk))
                continue
            }
            disk.detach()
            let named = (source.attributes ?? []).compactMap { $0.stringValue }.joined(separator: " ")
            notes.append("the \(disk["type"] ?? "file") \(device) \(target) (\(named)) is not in the point and is writable: left out")
        }
        guard pending.isEmpty else {
            throw RestoreXML.unusable("it has no disk \(pending.sorted().joined(separator: ", "))")
        }
    }

    private func restored(_ disk: XMLElement, file: String, format: String, export: String) {
        disk["type"] = "file"
        // The restored file is a plain image: no backing chain, no LUKS layer, no network auth.
        for child in ["source", "backingStore", "auth", "encryption", "mirror"].flatMap(disk.elements(forName:)) {
            child.detach()
        }
        let driver = disk.child("driver") ?? {
            let driver = XMLElement(name: "driver")
            driver["name"] = "qemu"
            disk.insertChild(driver, at: 0)
            return driver
        }()
        driver["type"] = format
        let source = XMLElement(name: "source")
        source["file"] = file
        disk.insertChild(source, at: driver.index + 1)
        guard let socket = options.nbdSocket else { return }
        driver["error_policy"] = "stop"
        driver["rerror_policy"] = "stop"
        let backing = Self.element(
            "<backingStore type='network'><format type='raw'/><source protocol='nbd' name='\(export.xmlEscaped)'>"
                + "<host transport='unix' socket='\(socket.xmlEscaped)'/></source><backingStore/></backingStore>")
        disk.insertChild(backing, at: source.index + 1)
    }

    /// An element from Coffre's own markup (escaped where it holds values).
    private static func element(_ markup: String) -> XMLElement {
        // Coffre's own markup: a parse failure is a bug here, not bad input.
        do { return try XMLElement(xmlString: markup) } catch { preconditionFailure("\(error): \(markup)") }
    }

    // MARK: Other devices

    mutating func device(_ element: XMLElement) throws {
        switch element.name ?? "" {
        case "serial", "console", "parallel", "channel":
            try characterDevice(element, label: Self.label(element), orPTY: true)
        case "interface": interface(element)
        case "graphics": try graphics(element)
        case "hostdev":
            element.detach()
            notes.append("a \(element["type"] ?? "host") device passed through to the original (\(Self.address(of: element))) is left out")
        case "tpm": try tpm(element)
        case "filesystem": filesystem(element)
        case "vsock":
            if let cid = element.child("cid"), cid["auto"] == "no" {
                notes.append("vsock CID \(cid["address"] ?? "?") is the original's: libvirt picks another")
                cid["auto"] = "yes"
                cid.removeAttribute(forName: "address")
            }
        case "memory":
            if let path = element.child("source")?.child("path")?.text {
                element.detach()
                notes.append("the \(element["model"] ?? "memory") device backed by \(path) holds data the point does not: left out")
            }
        case "rng":
            if let backend = element.child("backend"), backend["model"] == "egd" {
                if try !characterDevice(backend, label: "the random number generator's egd backend", orPTY: false) {
                    element.detach()
                }
            }
        case "smartcard" where element["mode"] == "passthrough", "redirdev":
            try characterDevice(element, label: "the \(element.name ?? "") device", orPTY: false)
        case "input" where ["evdev", "passthrough"].contains(element["type"]):
            element.detach()
            notes.append("the host input device \(element.child("source")?["dev"] ?? element.child("source")?["evdev"] ?? "?") the original grabs is left out")
        case "audio":
            if let path = element["path"] { element["path"] = try relocate(path) }
        default:
            break
        }
    }

    /// A character device (serial port, console, parallel port, channel; the backend of an rng,
    /// a smartcard, a USB redirection): its log file, the socket it listens on and the file it
    /// writes move to the new VM's folder. A pipe, a host device, a fixed listening TCP/UDP
    /// port belong to the original: the device becomes a pty (`orPTY`), or is left out.
    /// - Returns: whether the device is still there.
    @discardableResult
    private mutating func characterDevice(_ element: XMLElement, label: String, orPTY: Bool) throws -> Bool {
        for log in element.elements(forName: "log") {
            if let file = log["file"] { log["file"] = try relocate(file) }
        }
        let type = element["type"] ?? "pty"
        let sources = element.elements(forName: "source")
        var owned: String?
        switch type {
        case "unix":
            for source in sources {
                guard let path = source["path"] else { continue }
                if source["mode"] == "bind" {
                    source["path"] = try relocate(path, socket: true)
                } else {
                    shared.insert(path)  // a service the VM connects to; several clients may
                }
            }
        case "file":
            for source in sources {
                if let path = source["path"] { source["path"] = try relocate(path) }
            }
        case "pty":
            sources.forEach { $0.detach() }  // a running domain's /dev/pts/N
        case "pipe", "dev", "nmdm":
            owned = "\(type) \(sources.compactMap { $0["path"] ?? $0["master"] }.joined(separator: ", "))"
        case "tcp", "udp":
            for source in sources where source["mode"] == "bind" && !["0", nil].contains(source["service"]) {
                owned = "\(type) port \(source["service"]!) it listens on"
            }
        default:
            break
        }
        guard let owned else { return true }
        if orPTY {
            element["type"] = "pty"
            for child in element.elements(forName: "source") + element.elements(forName: "protocol") { child.detach() }
            notes.append("\(label) used the original's \(owned): it is a pty on \(name)")
            return true
        }
        element.detach()
        notes.append("\(label) used the original's \(owned): left out")
        return false
    }

    /// No MAC (libvirt makes one), no tap device name of the original's; a device that only
    /// one VM can hold (an SR-IOV function, a vhost-user port, a listening socket, a tap made
    /// by hand) is left out.
    private mutating func interface(_ element: XMLElement) {
        for mac in element.elements(forName: "mac") { mac.detach() }
        let type = element["type"] ?? "?"
        let owned: String? = switch type {
        case "hostdev": "host device \(Self.address(of: element))"
        case "vhostuser": "vhost-user socket \(element.child("source")?["path"] ?? "")"
        case "server": "listening port \(element.child("source")?["port"] ?? "")"
        default: element.elements(forName: "target").first { $0["managed"] == "no" }.map { "tap device \($0["dev"] ?? "")" }
        }
        if let owned {
            element.detach()
            notes.append("a \(type) network interface on the original's \(owned) is left out: give \(name) a network by hand")
            return
        }
        for target in element.elements(forName: "target") { target.detach() }
    }

    /// A display on a fixed port gets one libvirt picks; one on a Unix socket gets its own socket.
    private mutating func graphics(_ element: XMLElement) throws {
        let type = element["type"] ?? "graphics"
        let fixed = ["port", "tlsPort", "websocket"].compactMap { attribute -> String? in
            guard let value = element[attribute], let port = Int(value), port > 0 else { return nil }
            return value
        }
        if !fixed.isEmpty {
            for attribute in ["port", "tlsPort"] { element.removeAttribute(forName: attribute) }
            if element["websocket"] != nil { element["websocket"] = "-1" }
            element["autoport"] = "yes"
            notes.append("the \(type) display listened on the original's port \(fixed.joined(separator: ", ")): \(name) gets ports libvirt picks")
        }
        if let socket = element["socket"] { element["socket"] = try relocate(socket, socket: true) }
        for listen in element.elements(forName: "listen") {
            if let socket = listen["socket"] { listen["socket"] = try relocate(socket, socket: true) }
        }
    }

    /// An emulated TPM's state follows the domain's UUID: the copy gets a new, empty TPM. A
    /// host TPM or an external emulator's socket belongs to the original.
    private mutating func tpm(_ element: XMLElement) throws {
        let backend = element.child("backend")
        guard backend?["type"] == "emulator" else {
            element.detach()
            notes.append("the TPM (\(backend?["type"] ?? "?") \(backend.map { RestoreXML.hostPaths(in: $0).sorted().joined(separator: ", ") } ?? "")) is the original's: left out")
            return
        }
        for source in backend?.elements(forName: "source") ?? [] {
            if let path = source["path"] { source["path"] = try relocate(path) }
        }
        notes.append("the emulated TPM starts empty (its state is not in the point): secrets sealed to the original's TPM need their recovery keys")
    }

    /// A shared host folder stays shared; a folder served by a virtiofsd started for the
    /// original, or an image file or block device mounted in it, is left out.
    private mutating func filesystem(_ element: XMLElement) {
        let source = element.child("source")
        let type = element["type"] ?? "mount"
        if let socket = source?["socket"] {
            element.detach()
            notes.append("the shared folder served by the original's virtiofsd (\(socket)) is left out")
        } else if type == "file" || type == "block" {
            element.detach()
            notes.append("the \(type) file system \(source.map { RestoreXML.hostPaths(in: $0).sorted().joined(separator: ", ") } ?? "") mounted in the original is left out")
        } else {
            shared.formUnion(RestoreXML.hostPaths(in: element))
        }
    }

    // MARK: Isolation

    /// A boot verification's VM reaches nothing of the original's world: no network, no vsock,
    /// no disk but its own (read-only media aside), no shared folder or memory, no host device or
    /// host service; its serial ports become ptys. It keeps (or gets) a guest agent channel.
    mutating func isolate(_ devices: XMLElement) {
        var cut: [String] = []
        for element in devices.childElements {
            switch element.name ?? "" {
            case "interface", "filesystem", "shmem", "hostdev", "redirdev", "smartcard", "vsock":
                element.detach()
                cut.append(element.name ?? "")
            case "rng" where element.child("backend")?["model"] == "egd":
                element.detach()
                cut.append("rng from a host daemon")
            case "disk" where !ownDisks.contains(where: { $0 === element }) && element["device"] != "cdrom" && element.child("readonly") == nil:
                element.detach()
                cut.append("disk \(element.child("target")?["dev"] ?? "?")")
            case "serial", "console", "parallel", "channel":
                let connects = element["type"] == "tcp" || element["type"] == "udp"
                    || (element["type"] == "unix" && element.elements(forName: "source").contains { $0["mode"] != "bind" })
                guard connects else { continue }
                if element.name == "channel" {
                    element.detach()
                } else {
                    element["type"] = "pty"
                    for child in element.elements(forName: "source") + element.elements(forName: "protocol") { child.detach() }
                }
                cut.append("\(element.name ?? "") to a host service")
            default:
                break
            }
        }
        let agent = RestoreXML.guestAgentChannel
        if !devices.elements(forName: "channel").contains(where: { $0.child("target")?["name"] == agent }) {
            devices.addChild(Self.element("<channel type='unix'><source mode='bind'/><target type='virtio' name='\(agent)'/></channel>"))
            notes.append("a guest agent channel was added")
        }
        if !cut.isEmpty { notes.append("isolated: left out \(Set(cut).sorted().joined(separator: ", "))") }
    }

    // MARK: Shared on purpose

    /// Paths both domains name by design: the emulator, the firmware and kernel, shared memory,
    /// the host random device, NSS databases, cgroup partitions, I/O tuning of host devices.
    mutating func sharedPaths(of root: XMLElement) {
        let os = root.child("os")
        for name in ["kernel", "initrd", "dtb", "loader"] {
            for element in os?.elements(forName: name) ?? [] where element["readonly"] != "no" {
                shared.formUnion(RestoreXML.hostPaths(in: element))
            }
        }
        for element in ["resource", "blkiotune", "sysinfo"].flatMap(root.elements(forName:)) {
            shared.formUnion(RestoreXML.hostPaths(in: element))
        }
        let devices = root.child("devices")
        for element in ["emulator", "shmem", "smartcard", "rng"].flatMap({ devices?.elements(forName: $0) ?? [] }) {
            shared.formUnion(RestoreXML.hostPaths(in: element))
        }
    }

    // MARK: Paths

    /// The new VM's own file for a per-domain `path` of the original: its name in the new VM's
    /// folder, made unique there; the same path twice (a serial port and its console) gets the
    /// same file. A socket whose path would be too long gets a short name.
    private mutating func relocate(_ path: String, socket: Bool = false) throws -> String {
        if let done = moved[path] { return done }
        let base = (path as NSString).lastPathComponent
        let stem = (base as NSString).deletingPathExtension, ext = (base as NSString).pathExtension
        var candidate = base.isEmpty || base == "/" ? "file" : base
        var counter = 2
        while taken.contains(candidate) {
            candidate = stem + "-\(counter)" + (ext.isEmpty ? "" : "." + ext)
            counter += 1
        }
        if socket && (directory + "/" + candidate).utf8.count > RestoreXML.socketPathLimit {
            counter = moved.count
            repeat { candidate = "s\(counter)" ; counter += 1 } while taken.contains(candidate)
            guard (directory + "/" + candidate).utf8.count <= RestoreXML.socketPathLimit else {
                throw CoffreError(.restoreNotSupported,
                                  "The socket \(path) of the VM cannot move to \(directory): a Unix socket path holds \(RestoreXML.socketPathLimit) bytes at most",
                                  workaround: "Set the libvirt fabric's restoreDirectory to a shorter path, or choose a shorter VM name")
            }
        }
        taken.insert(candidate)
        let destination = directory + "/" + candidate
        moved[path] = destination
        return destination
    }

    private static func label(_ element: XMLElement) -> String {
        let target = element.child("target")
        if let name = target?["name"] { return "the \(element.name ?? "") \(name)" }
        return "the \(element.name ?? "") \(target?["port"] ?? "")".trimmingCharacters(in: .whitespaces)
    }

    private static func address(of element: XMLElement) -> String {
        guard let address = element.child("source")?.child("address") ?? element.child("source") else { return "?" }
        return (address.attributes ?? []).compactMap { attribute in
            attribute.name.map { "\($0)=\(attribute.stringValue ?? "")" }
        }.joined(separator: " ")
    }
}

extension XMLElement {
    fileprivate subscript(_ name: String) -> String? {
        get { attribute(forName: name)?.stringValue }
        set {
            removeAttribute(forName: name)
            if let newValue { addAttribute(XMLNode.attribute(withName: name, stringValue: newValue) as! XMLNode) }
        }
    }

    fileprivate func child(_ name: String) -> XMLElement? { elements(forName: name).first }

    fileprivate var childElements: [XMLElement] { children?.compactMap { $0 as? XMLElement } ?? [] }

    /// The trimmed text of an element, nil when empty.
    fileprivate var text: String? {
        let value = stringValue?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return value.isEmpty ? nil : value
    }
}
#endif
