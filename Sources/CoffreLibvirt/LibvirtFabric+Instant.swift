#if Libvirt
public import CoffreCore
import CoffreNBD
import CoffreSystem
import Foundation
import Synchronization

/// Instant restore: a domain started at once on qcow2 overlays whose backing files are the
/// point's disks, exported by Coffre's own NBD server on a Unix socket (`CoffreNBD`); its disks
/// are then copied to local qcow2 files by libvirt's block copy while it runs, and the domain
/// pivots to them. A boot verification is the same start, isolated and transient, without
/// the copy. docs/libvirt.md ("Instant restore") tells the whole story and its failure cases.
extension LibvirtFabric {
    public var runsPoints: Bool { true }

    public func makeInstantRestore(_ request: InstantRestoreRequest) async throws -> any InstantRestore {
        guard Naming.isValid(request.name) else { throw CoffreError.invalidName("VM name", request.name) }
        let connection = try await connection()
        let originalXML = try await definitionForNewDomain(request.name, original: request.original,
                                                          kept: request.definition, connection)
        let final = configuration.restoreDirectory + "/" + request.name
        if request.purpose == .restore, await runOnThread({ _ in FileIO.hasEntry(final) }) {
            throw CoffreError.restoreTargetExists(final)
        }
        return LibvirtInstantRestore(
            fabric: self, connection: connection, request: request, originalXML: originalXML,
            scratch: scratchFolder(Self.instantScratch(request.job)), final: final)
    }

    /// What a killed process's instant restore left. Only the job's own VM is touched: the one
    /// with the recorded UUID, or (before it was recorded) the one whose disks are in the job's
    /// scratch folder. A restore's VM is kept and described (its users' writes since the start
    /// are in the overlays); a verification's is removed.
    public func recoverInstantRestore(
        job: String, name: String, id: String?, purpose: InstantRestoreRequest.Purpose
    ) async -> String? {
        let scratch = scratchFolder(Self.instantScratch(job))
        let final = configuration.restoreDirectory + "/" + name
        let domain: LibvirtDomain?
        do {
            domain = try await connection().domain(named: name)
        } catch {
            return "The state of the VM \(name) could not be read (\(error)); nothing was removed. "
                + "Its overlays are in \(scratch)" + (purpose == .restore ? ", its copies in \(final)" : "")
        }
        // Ours: the UUID recorded at its start, else disks in this job's scratch folder.
        var ours = false
        if let domain {
            if let id { ours = domain.uuid == id } else { ours = (try? await domain.xml())?.contains(scratch) == true }
        }
        switch purpose {
        case .verification:
            guard let domain, ours else {
                try? await runOnThread { _ in try FileIO.removeTree(scratch) }
                return nil
            }
            await domain.remove()
            try? await runOnThread { _ in try FileIO.removeTree(scratch) }
            return "its isolated VM \(name) was removed"
        case .restore:
            guard let domain else {
                return "The VM \(name) is gone. Its files are left: overlays in \(scratch), partial copies in \(final); "
                    + "remove them before restoring under that name again"
            }
            guard ours else {
                return "A VM \(name) exists that is not this restore's: nothing was touched. This restore's files are left: "
                    + "overlays in \(scratch), partial copies in \(final)"
            }
            return await LibvirtInstantRestore.leftBehind(domain, scratch: scratch, final: final)
        }
    }

    static func instantScratch(_ job: String) -> String { "instant-" + job }
}

/// One instant restore on a libvirt host; every step is recorded so that `abort()` undoes
/// exactly what was done.
final class LibvirtInstantRestore: InstantRestore {
    let fabric: LibvirtFabric
    let connection: LibvirtConnection
    let request: InstantRestoreRequest
    let originalXML: String
    /// The NBD socket and the overlays (owned by libvirt-qemu); the verification VM's own files too.
    let scratch: String
    /// The restored VM's folder: its disk copies and per-domain files (a restore only).
    let final: String

    private struct State {
        /// What the definition's rewriting changed or left out (reported at the end).
        var notes: [String] = []
        var disks: (any PointDisks)?
        var server: NBDServer?
        var domain: LibvirtDomain?
        var madeScratch = false
        var madeFinal = false
        /// Disks whose block copy was started.
        var copying: [String] = []
        /// The copies are the domain's disks now: nothing is to be undone.
        var finished = false
        var aborted = false
    }
    private let state = Mutex(State())

    init(fabric: LibvirtFabric, connection: LibvirtConnection, request: InstantRestoreRequest, originalXML: String,
         scratch: String, final: String) {
        self.fabric = fabric
        self.connection = connection
        self.request = request
        self.originalXML = originalXML
        self.scratch = scratch
        self.final = final
    }

    private var isRestore: Bool { request.purpose == .restore }
    /// Where the domain's per-domain files go (logs, sockets, UEFI variables).
    private var home: String { isRestore ? final : scratch }
    private var socket: String { scratch + "/nbd.sock" }
    private var diskNames: [String] { state.withLock { $0.disks?.readableDisks.map(\.name) ?? [] } }

    private func overlay(_ disk: String) -> String { scratch + "/" + disk + ".overlay.qcow2" }
    private func copyFile(_ disk: String) -> String { final + "/" + DiskFormat.qcow2.fileName(forDisk: disk) }

    func start() async throws -> String {
        let disks = try await request.openDisks()
        state.withLock { $0.disks = disks }
        let readable = disks.readableDisks
        try await runOnThread { [self] _ in
            _ = try fabric.makeScratchFolder(LibvirtFabric.instantScratch(request.job))
            state.withLock { $0.madeScratch = true }
            if isRestore {
                guard !FileIO.hasEntry(final) else { throw CoffreError.restoreTargetExists(final) }
                try FileIO.makeDirectories(final)
                state.withLock { $0.madeFinal = true }
            }
            let server = try NBDServer(disks: disks, socketPath: socket)
            state.withLock { $0.server = server }
            // QEMU runs as libvirt-qemu: the socket must let it connect.
            _ = try FileIO.giveToUser(socket, user: "libvirt-qemu")
            for disk in readable {
                try qemuImg(["create", "-q", "-f", "qcow2", "-u", "-b", "nbd+unix:///\(disk.name)?socket=\(socket)",
                             "-F", "raw", overlay(disk.name), String(disk.size)])
            }
        }
        let definition = try RestoreXML.newDomain(
            from: originalXML, name: request.name,
            files: Dictionary(uniqueKeysWithValues: readable.map { ($0.name, overlay($0.name)) }), directory: home,
            format: "qcow2", options: RestoreXML.Options(nbdSocket: socket, isolated: !isRestore))
        state.withLock { $0.notes = definition.notes }
        try await runOnThread { _ in
            for copy in definition.copies where FileIO.exists(copy.from) {
                try FileIO.writeFileAtomically(copy.to, try FileIO.readExistingFile(copy.from), mode: 0o600)
            }
        }
        let domain: LibvirtDomain
        if isRestore {
            domain = try await connection.define(definition.xml)
            state.withLock { $0.domain = domain }
            try await domain.start()
        } else {
            domain = try await connection.createTransient(definition.xml)
            state.withLock { $0.domain = domain }
        }
        return domain.uuid
    }

    func copy(progress: @escaping @Sendable (Int64, Int64) -> Void) async throws {
        guard isRestore, let domain = state.withLock({ $0.domain }) else {
            throw CoffreError(.instantRestoreFailed, "The VM \(request.name) is not running from the point: nothing to copy",
                              workaround: "Run the instant restore again")
        }
        let disks = state.withLock { $0.disks?.readableDisks ?? [] }
        let total = disks.reduce(0) { $0 + $1.size }
        for disk in disks {
            try await runOnThread { [self] _ in
                try qemuImg(["create", "-q", "-f", "qcow2", copyFile(disk.name), String(disk.size)])
            }
            try await domain.startBlockCopy(disk.name, to: copyFile(disk.name), format: "qcow2",
                                            bandwidth: fabric.configuration.instantCopyBandwidth)
            state.withLock { $0.copying.append(disk.name) }
        }
        while true {
            try Task.checkCancellation()
            var copied: Int64 = 0
            var caughtUp = true
            for disk in disks {
                guard let job = try await domain.blockJob(disk.name) else {
                    throw await copyStopped(disk.name, domain)
                }
                // libvirt's cursor counts what the guest wrote meanwhile too: capped at the disk's size.
                copied += job.end > 0 ? Int64(Double(disk.size) * Double(job.current) / Double(job.end)) : 0
                caughtUp = caughtUp && job.caughtUp
            }
            progress(min(copied, total), total)
            if caughtUp { return }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    /// Why a disk's block copy ended before the switch: the domain's state and the server's failure.
    private func copyStopped(_ disk: String, _ domain: LibvirtDomain) async -> CoffreError {
        let state = (try? await domain.stateDescription().words) ?? "in an unknown state"
        let failure = self.state.withLock { $0.server?.readFailure }
        return CoffreError(.instantRestoreFailed,
                           "The copy of disk \(disk) of \(request.name) stopped before it was complete; the VM is \(state)"
                               + (failure.map { ": \($0.message)" } ?? ""),
                           workaround: "The VM and its files are removed; verify the point (coffre verify) and run the restore again")
    }

    func finish() async throws -> RestoredVM {
        guard isRestore, let domain = state.withLock({ $0.domain }) else {
            throw CoffreError(.instantRestoreFailed, "The VM \(request.name) is not running from the point: nothing to switch",
                              workaround: "Run the instant restore again")
        }
        let names = diskNames
        for disk in names { try await pivot(domain, disk) }
        state.withLock { $0.finished = true }
        // From here the VM runs on its own disks: nothing fails the restore any more. libvirt
        // updated its definition at the switch (the copies, and the MACs and generation id it
        // made at the start, kept); only the overlays' stop-on-error policy goes back to the original's.
        var notes = state.withLock { $0.notes }
        do {
            let current = try await domain.xml(inactive: true)
            _ = try await connection.define(try RestoreXML.withErrorPolicies(of: originalXML, on: current, disks: names))
        } catch {
            notes.append("its disks keep the policy of pausing on a read error (restoring the original's failed: \(error))")
        }
        await stopServing()
        try? await runOnThread { [self] _ in try FileIO.removeTree(scratch) }
        return RestoredVM(key: VMKey(cloudService: request.original.cloudService, name: request.name),
                          files: names.map(copyFile), notes: notes)
    }

    /// Switches a disk to its copy; a mirror that is not ready yet (libvirt says so) is asked again.
    private func pivot(_ domain: LibvirtDomain, _ disk: String) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            do {
                try await domain.endBlockJob(disk, pivot: true)
                return
            } catch let error as CoffreError where ContinuousClock.now < deadline && error.message.contains("not ready") {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    func checkGuest(command: String?, timeout: Duration) async throws -> String {
        guard let domain = state.withLock({ $0.domain }) else {
            throw CoffreError(.bootVerificationFailed, "the VM \(request.name) was never started")
        }
        let deadline = ContinuousClock.now + timeout
        while true {
            if (try? await domain.guestPing(timeoutSeconds: 2)) != nil { break }
            let (state, words) = try await domain.stateDescription()
            if !state.isActive || state == .paused {
                let failure = self.state.withLock { $0.server?.readFailure }
                throw CoffreError(.bootVerificationFailed, "the VM is \(words)" + (failure.map { ": \($0.message)" } ?? ""))
            }
            guard ContinuousClock.now < deadline else {
                throw CoffreError(.bootVerificationFailed,
                                  "its guest agent did not answer within \(formatSeconds(timeout.inSeconds)) (the VM is \(words))")
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        guard let command else { return "the guest agent answered" }
        let remaining = max(5, (deadline - ContinuousClock.now).inSeconds)
        let result: GuestExecResult
        do {
            result = try await domain.guestShell(command, timeoutSeconds: remaining)
        } catch let error as CoffreError {
            throw CoffreError(.bootVerificationFailed, "the check command `\(command)` could not run: \(error.message)")
        }
        guard result.exitCode == 0 else {
            let said = String((result.errorOutput.isEmpty ? result.output : result.errorOutput).suffix(300))
                .trimmingCharacters(in: .whitespacesAndNewlines)
            throw CoffreError(.bootVerificationFailed,
                              "the check command `\(command)` exited with status \(result.exitCode.map { String($0) } ?? "unknown")" + (said.isEmpty ? "" : ": \(said)"))
        }
        return "the guest agent answered and `\(command)` succeeded"
    }

    func abort() async {
        let (domain, copying, finished, aborted) = state.withLock { s in
            defer { s.aborted = true }
            return (s.domain, s.copying, s.finished, s.aborted)
        }
        guard !aborted else { return }
        if !finished, let domain {
            for disk in copying { try? await domain.endBlockJob(disk, pivot: false) }
            await domain.remove()
        }
        await stopServing()
        let (madeScratch, madeFinal) = state.withLock { ($0.madeScratch, $0.madeFinal) }
        await runOnThread { [self] _ in
            if madeScratch { try? FileIO.removeTree(scratch) }
            if madeFinal && !finished { try? FileIO.removeTree(final) }
        }
    }

    func detach() async -> String {
        let domain = state.withLock { s in
            defer { s.aborted = true }
            return s.aborted ? nil : s.domain
        }
        await stopServing()
        guard let domain else { return "nothing was started" }
        return await Self.leftBehind(domain, scratch: scratch, final: final)
    }

    /// What is left of a restore's VM whose point is no longer served, and what to do, in words.
    static func leftBehind(_ domain: LibvirtDomain, scratch: String, final: String) async -> String {
        let name = domain.name
        let state = (try? await domain.stateDescription().words) ?? "in an unknown state"
        // After the switch its disks are its own copies: nothing is missing.
        if let xml = try? await domain.xml(), !xml.contains(scratch) {
            try? await runOnThread { _ in try FileIO.removeTree(scratch) }
            return "The VM \(name) is \(state) on its own disks in \(final): its copy had finished. Nothing is missing"
        }
        return "The VM \(name) is \(state): its disks were read from the point by the process that stopped, and what it "
            + "wrote since it started is in the overlays of \(scratch) (its partial copies are in \(final)). It is not "
            + "corrupted, but it cannot read the blocks it had not copied yet: it pauses at such a read. Keep what you need "
            + "from it, then remove it (`virsh destroy \(name); virsh undefine \(name) --nvram`, and the two folders) and run "
            + "the instant restore again"
    }

    /// Stops the NBD server and closes the point (once).
    private func stopServing() async {
        let (server, disks) = state.withLock { s in
            defer { (s.server, s.disks) = (nil, nil) }
            return (s.server, s.disks)
        }
        await runOnThread { _ in
            server?.stop()
            disks?.close()
        }
    }
}
#endif
