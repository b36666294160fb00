#if Libvirt
import CLibvirt
import CoffreCore
import CoffreSystem
import Foundation

/// Block copy (a running disk mirrored to a new file, then pivoted to it) and what an instant
/// restore needs around it: transient domains, and why a domain is paused.
extension LibvirtDomain {
    /// A block job's progress: `cur` of `end`, in bytes of the disk (libvirt's cursor).
    struct BlockJobProgress: Equatable {
        var current: Int64
        var end: Int64
        /// The mirror holds every byte and follows the guest's writes.
        var caughtUp: Bool { end > 0 && current == end }
    }

    /// Starts copying disk `target` (its whole backing chain, flattened) into `destination`,
    /// an existing image of the same size (`REUSE_EXT`). The job is not recoverable by
    /// libvirt (`TRANSIENT_JOB`): what a persistent domain allows.
    /// - Parameter bandwidth: bytes per second, nil for as fast as the host goes.
    func startBlockCopy(_ target: String, to destination: String, format: String, bandwidth: Int64?) async throws {
        let xml = "<disk type='file'><driver type='\(BackupXML.escape(format))'/><source file='\(BackupXML.escape(destination))'/></disk>"
        try await runOnThread { _ in
            var parameters: virTypedParameterPtr?
            var count: Int32 = 0
            var capacity: Int32 = 0
            defer { virTypedParamsFree(parameters, count) }
            if let bandwidth, bandwidth > 0 {
                guard virTypedParamsAddULLong(&parameters, &count, &capacity, VIR_DOMAIN_BLOCK_COPY_BANDWIDTH,
                                              UInt64(bandwidth)) == 0 else {
                    throw lastLibvirtError("set the copy bandwidth of \(target)", domain: self.name)
                }
            }
            let flags = VIR_DOMAIN_BLOCK_COPY_REUSE_EXT.rawValue | VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB.rawValue
            guard virDomainBlockCopy(self.pointer, target, xml, parameters, count, flags) == 0 else {
                throw lastLibvirtError("start copying disk \(target) of \(self.name) to \(destination)", domain: self.name)
            }
        }
    }

    /// The block job of disk `target`, nil when it has none (never started, or ended: finished,
    /// aborted or failed).
    func blockJob(_ target: String) async throws -> BlockJobProgress? {
        try await runOnThread { _ in
            var info = virDomainBlockJobInfo()
            let answer = virDomainGetBlockJobInfo(self.pointer, target, &info, 0)
            guard answer >= 0 else { throw lastLibvirtError("read the block job of \(target) on \(self.name)", domain: self.name) }
            guard answer == 1 else { return nil }
            return BlockJobProgress(current: Int64(clamping: info.cur), end: Int64(clamping: info.end))
        }
    }

    /// Ends the block job of disk `target`: with `pivot`, the domain switches to the copy
    /// (which must have caught up); without, the copy is dropped and the disk stays as it was.
    /// Waits until the job is gone.
    func endBlockJob(_ target: String, pivot: Bool) async throws {
        try await runOnThread { _ in
            let flags = pivot ? VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT.rawValue : 0
            guard virDomainBlockJobAbort(self.pointer, target, flags) == 0 else {
                throw lastLibvirtError("\(pivot ? "switch disk \(target) of \(self.name) to its copy" : "stop the copy of \(target) on \(self.name)")",
                                       domain: self.name)
            }
        }
    }

    /// The domain's state and libvirt's reason for it, in words (`paused (I/O error)`).
    func stateDescription() async throws -> (state: DomainState, words: String) {
        try await runOnThread { _ in
            var state: Int32 = 0
            var reason: Int32 = 0
            guard virDomainGetState(self.pointer, &state, &reason, 0) == 0 else {
                throw lastLibvirtError("read the state of \(self.name)", domain: self.name)
            }
            let domainState = DomainState(libvirt: state)
            if state == Int32(VIR_DOMAIN_PAUSED.rawValue) {
                let why = switch UInt32(reason) {
                case VIR_DOMAIN_PAUSED_IOERROR.rawValue: "an I/O error on a disk"
                case VIR_DOMAIN_PAUSED_USER.rawValue: "a user"
                default: "libvirt reason \(reason)"
                }
                return (domainState, "paused by \(why)")
            }
            return (domainState, "\(domainState)")
        }
    }

    /// Undefines the domain if it is persistent, after stopping it if it runs; a transient one
    /// vanishes when stopped. No error when it is already gone.
    func remove() async {
        if (try? await state().isActive) == true { try? await destroy() }
        if (try? await isPersistent()) == true { try? await undefine() }
    }
}

extension LibvirtConnection {
    /// Creates and starts a transient domain (gone once it stops).
    func createTransient(_ xml: String) async throws -> LibvirtDomain {
        try await runOnThread { _ in
            guard let pointer = virDomainCreateXML(self.pointer, xml, 0) else { throw lastLibvirtError("start a transient domain") }
            return try LibvirtDomain(connection: self, taking: pointer)
        }
    }
}
#endif
