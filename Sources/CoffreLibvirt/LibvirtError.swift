#if Libvirt
import CLibvirt
import CoffreCore

/// libvirt's last error on this thread, as a `CoffreError` with a code chosen from libvirt's
/// error number.
///
/// **Call on the thread that made the failing call**: libvirt keeps the last error per thread.
/// - Parameters:
///   - operation: what was being done, in words ("list domains").
///   - domain: the domain involved, for domain-level codes.
///   - agentCommand: the guest agent command, when the call was one.
func lastLibvirtError(_ operation: String, domain: String? = nil, agentCommand: String? = nil) -> CoffreError {
    let (code, message) = takeLastError()
    let detail = "\(message) (libvirt error \(code))"
    switch UInt32(bitPattern: code) {
    case VIR_ERR_NO_DOMAIN.rawValue:
        return .domainNotFound(domain ?? "?")
    case VIR_ERR_AGENT_UNRESPONSIVE.rawValue, VIR_ERR_AGENT_UNSYNCED.rawValue:
        return .guestAgentUnavailable(domain ?? "?", detail: detail)
    case VIR_ERR_OPERATION_INVALID.rawValue where message.contains("not running"):
        return .domainNotRunning(domain ?? "?", detail: detail)
    case VIR_ERR_ARGUMENT_UNSUPPORTED.rawValue where agentCommand != nil,
         VIR_ERR_OPERATION_UNSUPPORTED.rawValue where agentCommand != nil:
        // "QEMU guest agent is not configured": the domain has no agent channel.
        return .guestAgentUnavailable(domain ?? "?", detail: detail)
    default:
        if let agentCommand, message.contains("agent command") || message.contains("guest agent") {
            return .guestAgentFailed(domain ?? "?", command: agentCommand, detail: detail)
        }
        return .libvirtFailed(operation, detail: detail)
    }
}

/// Reads and clears this thread's last libvirt error.
func takeLastError() -> (code: Int32, message: String) {
    guard let error = virGetLastError() else { return (0, "unknown libvirt error") }
    let code = error.pointee.code
    let message = error.pointee.message.map { String(cString: $0) } ?? "unknown libvirt error"
    virResetLastError()
    return (code, message)
}

/// One-time process setup: libvirt's library opened (coffre does not link it, see CLibvirt.h),
/// thread-safe initialisation, and no printing of every error on stderr (libvirt's default);
/// errors reach the caller as `CoffreError`s instead.
enum LibvirtLibrary {
    /// nil when libvirt is ready, else why not.
    static let unavailable: CoffreError? = {
        var reason = [CChar](repeating: 0, count: 512)
        guard coffre_libvirt_load(&reason, reason.count) == 0 else {
            let detail = String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return CoffreError(.libvirtMissing, "libvirt's client library is not installed on this host (\(detail))",
                               workaround: "apt-get install -y libvirt0, or remove libvirtFabrics from coffre.json")
        }
        guard virInitialize() == 0 else {
            return CoffreError(.libvirtError, "libvirt could not be initialised: \(takeLastError().message)")
        }
        virSetErrorFunc(nil) { _, _ in }
        return nil
    }()
}
#endif
