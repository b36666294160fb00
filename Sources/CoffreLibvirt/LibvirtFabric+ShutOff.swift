#if Libvirt
import CoffreCore
import CoffreSystem
import CoffreNBD
import Foundation

/// Backups of shut-off domains: libvirt's backup API needs a running QEMU, so each disk file is
/// exported read-only by `qemu-nbd` instead (nothing changes while the domain is off). The
/// qcow2 bitmap of the newest checkpoint still records every write since it, so an
/// incremental reads only those; no checkpoint can be created, so the point keeps that one.
extension LibvirtFabric {
    func makeShutOffSnapshot(
        _ domain: LibvirtDomain, key: VMKey, description: DomainDescription, id: String, since: ChangeBase?,
        definition: String
    ) async throws -> ShutOffSnapshot {
        for disk in description.disks where disk.type != "file" || disk.source == nil || !["raw", "qcow2", nil].contains(disk.format) {
            throw CoffreError(.unsupportedDisk,
                              "The disk \(disk.target) of the shut-off domain \(key) is a \(disk.type) \(disk.format ?? "") disk; only raw and qcow2 files can be read while it is off",
                              workaround: "Start the VM: running domains are read through libvirt's backup API")
        }
        var resync: String?
        var incremental: ChangeBase?
        if let since {
            let newest = try await domain.checkpointNames().last(where: Self.isCoffreCheckpoint)
            if newest != since.token {
                resync = newest == nil
                    ? "checkpoint \(since.token) no longer exists (its metadata was deleted, or the VM was re-created or moved)"
                    : "changes since checkpoint \(since.token) are spread over later checkpoints; a shut-off domain is read in full"
            } else {
                incremental = since
            }
        }
        let folder = scratchFolder(id)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var exports: [NBDDevice] = []
        var disks: [any BlockDevice] = []
        do {
            for disk in description.disks {
                let socket = folder + "/\(disk.target).sock"
                let bitmap = incremental != nil && disk.format == "qcow2" ? incremental!.token : nil
                try await runOnThread { _ in
                    try QemuNBDServer.start(file: disk.source!, format: disk.format ?? "raw", export: disk.target,
                                            bitmap: bitmap, socket: socket, pidFile: folder + "/\(disk.target).pid")
                }
                let device = try NBDDevice(configuration: .init(
                    endpoint: .unix(path: socket), export: disk.target, name: disk.target,
                    extents: bitmap.map { .dirtyBitmap($0) } ?? .allocation, maxConnections: configuration.connectionsPerDisk))
                exports.append(device)
                disks.append(bitmap != nil ? LibvirtChangedDisk(device: device, changesSince: incremental!.point) as any BlockDevice
                                           : LibvirtDisk(device: device))
                if bitmap == nil, incremental != nil, resync == nil { resync = "disk \(disk.target) is not qcow2: read in full" }
            }
        } catch {
            exports.forEach { $0.close() }
            QemuNBDServer.stopAll(in: folder)
            try? FileManager.default.removeItem(atPath: folder)
            if incremental != nil, let coffreError = error as? CoffreError, coffreError.code == .qemuNBDFailed {
                // The bitmap is not in the file (deleted, image replaced): read everything.
                return try await makeShutOffSnapshot(domain, key: key, description: description, id: id, since: nil,
                                                     definition: definition)
                    .withResync("the bitmap \(incremental!.token) cannot be read from the disk files: \(coffreError.message)")
            }
            throw error
        }
        return ShutOffSnapshot(fabric: self, id: id, devices: exports, disks: disks,
                               cost: "qemu-nbd on the files of the shut-off domain (\(incremental.map { "incremental from checkpoint \($0.token)" } ?? "full"))",
                               changeToken: incremental?.token, resyncReason: since == nil ? nil : resync,
                               definition: definition)
    }
}

/// The disk files of a shut-off domain served by `qemu-nbd`; `delete()` stops the servers.
struct ShutOffSnapshot: FabricSnapshot {
    let fabric: LibvirtFabric
    let id: String
    let devices: [NBDDevice]
    var disks: [any BlockDevice]
    var cost: String
    var bytesCopied: Int64 { 0 }
    var changeToken: String?
    var resyncReason: String?
    let definition: String?

    func delete() async throws {
        devices.forEach { $0.close() }
        let folder = fabric.scratchFolder(id)
        QemuNBDServer.stopAll(in: folder)
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// The same snapshot with a resync reason (a shut-off domain read in full after all).
    func withResync(_ reason: String) -> ShutOffSnapshot {
        var copy = self
        copy.resyncReason = reason
        return copy
    }
}

/// `qemu-nbd` processes, one per disk file, found again by their pid files.
enum QemuNBDServer {
    static func start(file: String, format: String, export: String, bitmap: String?, socket: String, pidFile: String) throws {
        var arguments = ["--read-only", "--persistent", "--fork", "--shared=8", "--format=\(format)", "--export-name=\(export)",
                         "--socket=\(socket)", "--pid-file=\(pidFile)"]
        if let bitmap { arguments += ["--bitmap=\(bitmap)"] }
        // With --fork the command returns once the socket accepts connections.
        let (status, message) = try HostCommand.run(
            "/usr/bin/qemu-nbd", arguments + [file], log: pidFile + ".log",
            missing: CoffreError(.qemuNBDMissing, "Cannot run /usr/bin/qemu-nbd", workaround: "apt-get install -y qemu-utils"))
        guard status == 0 else {
            throw CoffreError(.qemuNBDFailed, "qemu-nbd cannot serve \(file): \(message)",
                              workaround: "Check that the domain is still shut off and its disk files readable")
        }
    }

    /// Stops every server whose pid file is in `folder`, with SIGKILL: they only read, so
    /// nothing is lost, and the domain must not wait on their image lock.
    static func stopAll(in folder: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasSuffix(".pid") {
            guard let text = try? String(contentsOfFile: folder + "/" + name, encoding: .utf8),
                  let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1 else { continue }
            Processes.send(.kill, to: pid)
            // Wait until it is gone so the domain can start right after (it holds the image lock).
            Processes.waitUntilGone(pid, seconds: 2)
        }
    }
}
#endif
