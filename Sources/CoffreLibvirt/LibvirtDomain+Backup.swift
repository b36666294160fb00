#if Libvirt
import CLibvirt
import CoffreCore
import CoffreSystem
import Foundation

/// libvirt's backup API (pull mode) and checkpoints: what changed-block backups are made of.
extension LibvirtDomain {
    /// Starts a pull-mode backup: QEMU exports the disks' point-in-time contents over NBD
    /// (fleecing into scratch files) and, when `checkpointXML` is given, creates that
    /// checkpoint (a new dirty bitmap per disk) at the same instant.
    func beginBackup(_ backupXML: String, checkpointXML: String?) async throws {
        try await runOnThread { _ in
            guard virDomainBackupBegin(self.pointer, backupXML, checkpointXML, 0) == 0 else {
                throw lastLibvirtError("start a backup of \(self.name)", domain: self.name)
            }
        }
    }

    /// Ends the domain's running job (a pull-mode backup ends only this way); no error when
    /// there is none.
    func endBackupJob() async throws {
        try await runOnThread { _ in
            var info = virDomainJobInfo()
            guard virDomainGetJobInfo(self.pointer, &info) == 0 else {
                // A domain that is not running has no job.
                _ = takeLastError()
                return
            }
            guard info.type != Int32(VIR_DOMAIN_JOB_NONE.rawValue) else { return }
            if virDomainAbortJob(self.pointer) != 0 {
                let error = lastLibvirtError("end the backup job of \(self.name)", domain: self.name)
                // The job may have ended between the two calls.
                var again = virDomainJobInfo()
                if virDomainGetJobInfo(self.pointer, &again) == 0, again.type == Int32(VIR_DOMAIN_JOB_NONE.rawValue) { return }
                _ = takeLastError()
                throw error
            }
        }
    }

    /// The names of the domain's checkpoints, oldest first (libvirt's topological order).
    func checkpointNames() async throws -> [String] {
        try await runOnThread { _ in
            var list: UnsafeMutablePointer<virDomainCheckpointPtr?>?
            let count = virDomainListAllCheckpoints(self.pointer, &list, VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL.rawValue)
            guard count >= 0, let list else { throw lastLibvirtError("list the checkpoints of \(self.name)", domain: self.name) }
            defer { free(list) }
            var names: [String] = []
            for index in 0..<Int(count) {
                guard let checkpoint = list[index] else { continue }
                if let name = virDomainCheckpointGetName(checkpoint) { names.append(String(cString: name)) }
                virDomainCheckpointFree(checkpoint)
            }
            return names
        }
    }

    /// Deletes a checkpoint: its libvirt metadata and, unless `metadataOnly`, its dirty
    /// bitmaps (merged into the parent's, so later incrementals stay correct). No error when
    /// it does not exist.
    func deleteCheckpoint(_ name: String, metadataOnly: Bool = false) async throws {
        try await runOnThread { _ in
            guard let checkpoint = virDomainCheckpointLookupByName(self.pointer, name, 0) else {
                let (code, message) = takeLastError()
                if UInt32(bitPattern: code) == VIR_ERR_NO_DOMAIN_CHECKPOINT.rawValue { return }
                throw CoffreError.libvirtFailed("find checkpoint \(name) of \(self.name)", detail: message)
            }
            defer { virDomainCheckpointFree(checkpoint) }
            let flags = metadataOnly ? VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY.rawValue : 0
            guard virDomainCheckpointDelete(checkpoint, flags) == 0 else {
                throw lastLibvirtError("delete checkpoint \(name) of \(self.name)", domain: self.name)
            }
        }
    }

    /// Undefines a shut-off domain with its checkpoint metadata (the disk files stay).
    func undefine() async throws {
        try await runOnThread { _ in
            let flags = VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA.rawValue | VIR_DOMAIN_UNDEFINE_NVRAM.rawValue
            guard virDomainUndefineFlags(self.pointer, flags) == 0 else {
                throw lastLibvirtError("undefine \(self.name)", domain: self.name)
            }
        }
    }
}

extension LibvirtConnection {
    /// Defines a persistent domain from `xml`.
    func define(_ xml: String) async throws -> LibvirtDomain {
        try await runOnThread { _ in
            guard let pointer = virDomainDefineXML(self.pointer, xml) else { throw lastLibvirtError("define a domain") }
            return try LibvirtDomain(connection: self, taking: pointer)
        }
    }
}
#endif
