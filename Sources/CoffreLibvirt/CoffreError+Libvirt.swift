#if Libvirt
public import CoffreCore

/// The libvirt fabric's error catalogue.
extension CoffreError {
    /// libvirtd cannot be reached at `uri` (not running, wrong URI, no permission).
    public static func libvirtUnreachable(_ uri: String, detail: String) -> CoffreError {
        CoffreError(.fabricUnreachable, "Cannot connect to libvirt at \(uri): \(detail)",
                    workaround: "Check that libvirtd runs and that `virsh -c \(uri) version` answers, then fix the fabric's URI")
    }
    /// No domain of that name (or UUID) on the host.
    public static func domainNotFound(_ name: String, host: String? = nil) -> CoffreError {
        CoffreError(.vmNotFound, "No domain \(name) on the libvirt host\(host.map { " \($0)" } ?? "")",
                    workaround: "Run discovery again; the domain may have been undefined or renamed")
    }
    /// The operation needs a running domain.
    public static func domainNotRunning(_ name: String, detail: String) -> CoffreError {
        CoffreError(.vmNotRunning, "The domain \(name) is not running: \(detail)",
                    workaround: "Start the VM and try again")
    }
    /// The domain has no guest agent channel, or qemu-guest-agent does not answer in the guest.
    public static func guestAgentUnavailable(_ name: String, detail: String) -> CoffreError {
        CoffreError(.guestAgentUnavailable, "The guest agent of \(name) does not answer: \(detail)",
                    workaround: "Install and start qemu-guest-agent in the guest and give the domain an org.qemu.guest_agent.0 channel")
    }
    /// qemu-guest-agent answered with an error (unknown or disabled command, failed operation).
    public static func guestAgentFailed(_ name: String, command: String, detail: String) -> CoffreError {
        CoffreError(.guestAgentError, "The guest agent of \(name) failed \(command): \(detail)",
                    workaround: "Check qemu-guest-agent's version and log in the guest; the command may be disabled there")
    }
    /// Any other libvirt failure, with libvirt's own message.
    public static func libvirtFailed(_ operation: String, detail: String) -> CoffreError {
        CoffreError(.libvirtError, "libvirt failed to \(operation): \(detail)",
                    workaround: "See libvirtd's log on the host; the message is libvirt's")
    }
}
#endif
