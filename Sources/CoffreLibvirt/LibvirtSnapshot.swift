#if Libvirt
import CoffreCore
import CoffreNBD
import Foundation

/// A disk of a pull-mode backup, read over NBD; with changes when the backup is incremental.
struct LibvirtDisk: BlockDevice {
    let device: NBDDevice

    var name: String { device.name }
    var size: Int64 { device.size }
    func dataExtents(in range: Range<Int64>) throws -> [Range<Int64>] { try device.allocatedExtents(in: range) }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws { try device.read(into: buffer, at: offset) }
}

/// The same, counting changes from a recovery point: the dirty bitmap of the checkpoint taken
/// with that point (`qemu:dirty-bitmap:backup-<disk>`).
struct LibvirtChangedDisk: ChangeTrackingDevice {
    let device: NBDDevice
    let changesSince: String

    var name: String { device.name }
    var size: Int64 { device.size }
    func dataExtents(in range: Range<Int64>) throws -> [Range<Int64>] { try device.allocatedExtents(in: range) }
    func changedExtents(in range: Range<Int64>) throws -> [Range<Int64>] { try device.changedExtents(in: range) }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws { try device.read(into: buffer, at: offset) }
}

/// A running pull-mode backup: QEMU serves the disks as they were at `backup-begin` while the
/// guest goes on; `delete()` ends the job and removes the fleecing scratch files.
struct LibvirtSnapshot: FabricSnapshot {
    let fabric: LibvirtFabric
    let domain: LibvirtDomain
    let id: String
    let devices: [NBDDevice]
    let disks: [any BlockDevice]
    let cost: String
    var bytesCopied: Int64 { 0 }
    let changeToken: String?
    let resyncReason: String?
    let definition: String?
    /// Checkpoints to keep when cleaning up: the new one and the one changes counted from.
    let keep: Set<String>

    func delete() async throws {
        devices.forEach { $0.close() }
        try await fabric.endBackup(domain, id: id)
        await fabric.pruneCheckpoints(domain, keeping: keep)
    }
}
#endif
