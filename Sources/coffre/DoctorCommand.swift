import ArgumentParser
import CoffreCore
import CoffreEngine
import CoffreServer
import CoffrePostgres
import CoffreStorage
import CoffreSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `coffre doctor`: checks the host and the configuration, one line per check with what to do.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check the host and the configuration: one line per check, with what to do.",
        discussion: """
            Checks coffre.json, the vault (reachable, writable), free space and inodes, the encryption key \
            file's mode, the catalog (opens, migrations applied), the clock (against PostgreSQL's), the \
            fabrics (reachable; protected VMs' guest agents), FUSE and loop devices. Exit status 1 when a \
            check failed; warnings do not fail. Nothing is created (a probe object written to the vault is \
            removed at once).
            """)
    @OptionGroup var app: AppOptions
    @Flag(help: "Print the checks as JSON, for monitoring.") var json = false

    func run() async throws {
        let report = await Doctor(app: app).run()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            for check in report.checks { print(check.line) }
        }
        if !report.healthy { throw ExitCode(1) }
    }
}

/// One finding of `coffre doctor`.
struct DoctorCheck: Codable, Sendable, Equatable {
    enum Status: String, Codable, Sendable { case ok, warning, failed, skipped }

    var name: String
    var status: Status
    var detail: String
    /// What to do about it (warnings and failures).
    var advice: String?

    var line: String {
        let mark = switch status {
        case .ok: "ok     "
        case .warning: "WARNING"
        case .failed: "FAILED "
        case .skipped: "skipped"
        }
        let head = "\(mark) \(name)\(String(repeating: " ", count: max(1, 9 - name.count)))\(detail)"
        return advice.map { head + "\n        → " + $0 } ?? head
    }
}

struct DoctorReport: Encodable, Sendable {
    var checks: [DoctorCheck]
    /// No check failed.
    var healthy: Bool { !checks.contains { $0.status == .failed } }

    private enum CodingKeys: String, CodingKey { case checks, healthy }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(checks, forKey: .checks)
        try c.encode(healthy, forKey: .healthy)
    }
}

/// The checks, in order; a check that needs what an earlier one could not open is skipped.
struct Doctor {
    let app: AppOptions
    private var checks: [DoctorCheck] = []

    init(app: AppOptions) {
        self.app = app
    }

    /// Free space below these fails; below the warning levels, warns.
    static let minimumFreeBytes: Int64 = 256 << 20
    static let minimumFreeShare = 0.02
    static let comfortableFreeBytes: Int64 = 5 << 30
    static let comfortableFreeShare = 0.10
    /// Clock skew against the database: warned from, failed from (S3 refuses requests 15 minutes off).
    static let clockWarning: TimeInterval = 5
    static let clockFailure: TimeInterval = 60

    func run() async -> DoctorReport {
        var doctor = self
        await doctor.runChecks()
        return DoctorReport(checks: doctor.checks)
    }

    private mutating func add(_ name: String, _ status: DoctorCheck.Status, _ detail: String, advice: String? = nil) {
        checks.append(DoctorCheck(name: name, status: status, detail: detail, advice: advice))
    }

    private mutating func add(_ name: String, failure error: any Error, context: String) {
        if let error = error as? CoffreError {
            add(name, .failed, "\(context): \(error.code.rawValue): \(error.message)", advice: error.workaround)
        } else {
            add(name, .failed, "\(context): \(error)")
        }
    }

    private mutating func runChecks() async {
        let root = app.dataPath
        // coffre.json
        let settings: AppConfiguration
        do {
            settings = try app.readConfiguration()
            let file = app.configPath
            add("config", .ok, FileManager.default.fileExists(atPath: file) ? "\(file) is valid" : "no \(file): the defaults apply")
        } catch {
            add("config", failure: error, context: "coffre.json")
            for name in ["vault", "space", "key", "catalog", "clock", "fabrics"] {
                add(name, .skipped, "needs a valid coffre.json")
            }
            checkKernel()
            return
        }

        // The vault: opens, takes a write.
        let backend = (settings.vault ?? .local(path: "vault")).resolved(against: root)
        let keyOverride = ProcessInfo.processInfo.environment["COFFRE_ENCRYPTION_KEY_FILE"]
        var vault: Vault?
        do {
            let opened = try await runOnThread { _ in try backend.openVault(encryptionKeyFile: keyOverride) }
            vault = opened
            // At the top of the store: a local store would keep a folder made for it.
            let probe = "doctor-probe-\(UInt64.random(in: 0...UInt64.max))"
            try await runOnThread { _ in
                try opened.store.put(probe, Array("coffre doctor".utf8), mode: .replace, durability: .immediate)
                defer { try? opened.store.delete([probe]) }
                guard try opened.store.get(probe) == Array("coffre doctor".utf8) else {
                    throw CoffreError(.ioError, "the probe object read back differs from what was written",
                                      workaround: "Check the vault's storage: `coffre vault verify`")
                }
            }
            add("vault", .ok, "\(opened.path): opened, a probe object written, read back and removed")
        } catch {
            if vault == nil, let error = error as? CoffreError, error.code == .vaultNotFound {
                add("vault", .warning, "no vault at \(describe(backend)) yet",
                    advice: "The first command creates it with the defaults; or `coffre vault create` it first")
            } else {
                add("vault", failure: error, context: vault == nil ? "opening \(describe(backend))" : "writing to \(describe(backend))")
            }
        }

        // Space and inodes where the vault and the catalog are.
        var folders: [String] = [root]
        if case .local(let path) = backend { folders.insert(path, at: 0) }
        checkSpace(folders.filter { FileManager.default.fileExists(atPath: $0) }, s3: { if case .s3 = backend { true } else { false } }())

        // The encryption key file.
        if let vault {
            if let encryption = vault.configuration.encryption {
                checkKey(keyOverride ?? encryption.keyFile)
            } else {
                add("key", .skipped, "the vault is not encrypted")
            }
        } else {
            add("key", .skipped, "needs the vault")
        }

        // The catalog: opens (and takes its migrations).
        let catalogBackend = app.catalogBackend(settings: settings)
        var catalog: (any Catalog)?
        var protected: Set<VMKey> = []
        if case .sqlite(let path) = catalogBackend, !FileManager.default.fileExists(atPath: path) {
            add("catalog", .warning, "no catalog at \(path) yet", advice: "The first command creates it")
        } else {
            do {
                let opened = try await catalogBackend.open()
                catalog = opened
                let items = try await opened.items()
                protected = Set(items.filter { $0.state == .protected }.map(\.vm))
                add("catalog", .ok, "\(describe(catalogBackend)): opened, migrations applied, \(items.count) protected items")
            } catch {
                add("catalog", failure: error, context: describe(catalogBackend))
            }
        }

        // The clock.
        await checkClock(catalog as? any NodeCoordinator)

        // The fabrics.
        await checkFabrics(settings, root: root, protected: protected)

        checkKernel()
        checkCertificate(settings, root: root)
    }

    /// The certificate `coffre serve` answers HTTPS with: coffre.json's, else the self-signed one
    /// of `<data>/tls`; failed when it cannot be read or has expired, warned within 30 days.
    private mutating func checkCertificate(_ settings: AppConfiguration, root: String) {
        let selfSigned = SelfSignedCertificate.files(dataPath: root)
        let files: (certificate: String, key: String)
        if let certificate = settings.tlsCertificate {
            guard let key = settings.tlsKey else {
                add("tls", .failed, "coffre.json names tlsCertificate without tlsKey: coffre serve will not start",
                    advice: "Add \"tlsKey\": the PEM private key of \(certificate)")
                return
            }
            files = (AppOptions.resolve(certificate, against: root), AppOptions.resolve(key, against: root))
        } else if FileManager.default.fileExists(atPath: selfSigned.certificate) {
            files = (selfSigned.certificate, selfSigned.key)
        } else {
            add("tls", .skipped, settings.tlsSelfSigned == true
                ? "the self-signed certificate is made on the first start of coffre serve"
                : "no certificate in coffre.json and none made by --tls-self-signed: coffre serve speaks plain HTTP (loopback only)")
            return
        }
        let tls: ServerTLS
        do {
            tls = try ServerTLS.load(certificateFile: files.certificate, keyFile: files.key)
        } catch {
            add("tls", failure: error, context: "the TLS certificate")
            return
        }
        let left = tls.notValidAfter.timeIntervalSince(AppOptions.clock().now())
        let detail = "\(files.certificate): SHA-256 fingerprint \(tls.fingerprint), valid until \(Engine.instant(tls.notValidAfter))"
        if left <= 0 {
            add("tls", .failed, detail + ": expired",
                advice: "Renew it (a self-signed one: remove \(files.certificate) and its key, restart coffre serve, and pin the new fingerprint)")
        } else if left < 30 * 86_400 {
            add("tls", .warning, detail + ": expires in \(Int(left / 86_400)) days",
                advice: "Renew it before it expires: clients refuse an expired certificate")
        } else if let mode = try? Self.permissions(files.key), mode & 0o077 != 0 {
            add("tls", .warning, detail + "; its key \(files.key) has mode \(String(mode, radix: 8))",
                advice: "chmod 600 \(files.key): whoever reads it can pretend to be this server")
        } else {
            add("tls", .ok, detail)
        }
    }

    private func describe(_ backend: VaultBackend) -> String {
        switch backend {
        case .local(let path): path
        case .s3(let location): "s3://\(location.bucket)/\(location.prefix)"
        }
    }

    private func describe(_ backend: CatalogBackend) -> String {
        switch backend {
        case .sqlite(let path): "SQLite \(path)"
        case .postgres(let url): "PostgreSQL \(PostgresURL.redacted(url))"
        }
    }

    private mutating func checkSpace(_ folders: [String], s3: Bool) {
        var seen: Set<UInt> = []
        var lines: [String] = []
        var worst = DoctorCheck.Status.ok
        var advice: String?
        for folder in folders {
            var stats = statvfs()
            guard statvfs(folder, &stats) == 0 else {
                worst = .failed
                lines.append("\(folder): statvfs failed (\(String(cString: strerror(errno))))")
                continue
            }
            guard seen.insert(UInt(stats.f_fsid)).inserted else { continue }
            let free = Int64(stats.f_bavail) * Int64(stats.f_frsize)
            let total = Int64(stats.f_blocks) * Int64(stats.f_frsize)
            let share = total > 0 ? Double(free) / Double(total) : 0
            let inodes = stats.f_files > 0 ? Double(stats.f_favail) / Double(stats.f_files) : 1
            lines.append("\(folder): \(ByteSize.format(free)) free of \(ByteSize.format(total)) (\(Int(share * 100)) %), \(Int(inodes * 100)) % of inodes free")
            if free < Self.minimumFreeBytes || share < Self.minimumFreeShare || inodes < 0.01 {
                worst = .failed
                advice = "Backups stop when the file system is full: expire points (shorter retention), run `coffre vault gc`, or give the vault a larger file system"
            } else if worst == .ok && (free < Self.comfortableFreeBytes || share < Self.comfortableFreeShare || inodes < 0.05) {
                worst = .warning
                advice = "Space is getting short: plan more room or shorter retention before backups fail"
            }
        }
        if s3 { lines.append("the vault is on S3: the object store's own quotas apply") }
        if lines.isEmpty {
            add("space", .skipped, "no folder to measure yet")
        } else {
            add("space", worst, lines.joined(separator: "; "), advice: advice)
        }
    }

    private mutating func checkKey(_ path: String?) {
        guard let path else {
            add("key", .failed, "the vault is encrypted but names no key file",
                advice: "Pass --encryption-key FILE or set COFFRE_ENCRYPTION_KEY_FILE")
            return
        }
        let mode: mode_t
        do {
            mode = try Self.permissions(path)
        } catch {
            add("key", .failed, "\(path): \(error)",
                advice: "Restore the key file from where you keep its copy: without it no point of this vault can be read")
            return
        }
        if mode & 0o077 != 0 {
            add("key", .failed, "\(path) has mode \(String(mode, radix: 8)): other users may read the vault's key",
                advice: "chmod 600 \(path) (and keep a copy of it away from the vault)")
        } else {
            add("key", .ok, "\(path) has mode \(String(mode, radix: 8))")
        }
    }

    /// The permission bits of a file; throws the system's reason when it cannot be read.
    private static func permissions(_ path: String) throws -> mode_t {
        struct Unreadable: Error, CustomStringConvertible { var description: String }
        var info = stat()
        guard stat(path, &info) == 0 else { throw Unreadable(description: String(cString: strerror(errno))) }
        return info.st_mode & 0o777
    }

    private mutating func checkClock(_ coordinator: (any NodeCoordinator)?) async {
        let mine = AppOptions.clock().now()
        var notes: [String] = []
        var status = DoctorCheck.Status.ok
        var advice: String?
        if let coordinator {
            do {
                let before = Date()
                let database = try await coordinator.databaseTime()
                let roundTrip = Date().timeIntervalSince(before)
                // The database read its clock about half a round trip after this one was read.
                let skew = mine.addingTimeInterval(roundTrip / 2).timeIntervalSince(database)
                notes.append(String(format: "%+.1f s from PostgreSQL's clock", skew))
                if abs(skew) >= Self.clockFailure {
                    status = .failed
                } else if abs(skew) >= Self.clockWarning {
                    status = .warning
                }
                if status != .ok {
                    advice = "Synchronize this machine's clock (NTP: systemd-timesyncd or chrony): schedules fire at the wrong time, and S3 refuses requests signed 15 minutes off"
                }
            } catch {
                notes.append("PostgreSQL's clock could not be read: \(error)")
                status = .warning
            }
        }
        switch WallClock.isSynchronized {
        case false:
            notes.append("the kernel says the clock is not synchronized (no NTP?)")
            if status == .ok {
                status = .warning
                advice = "Run an NTP client (systemd-timesyncd or chrony) so that schedules and S3 signatures stay right"
            }
        case true: notes.append("the kernel says the clock is synchronized")
        case nil: notes.append("the kernel cannot tell whether the clock is synchronized")
        }
        add("clock", status, notes.joined(separator: "; "), advice: advice)
    }

    /// - Parameter protected: the VMs the catalog protects (their guest agents are checked).
    private mutating func checkFabrics(_ settings: AppConfiguration, root: String, protected: Set<VMKey>) async {
        let fabrics: [any Fabric]
        do {
            fabrics = try AppOptions.fabrics(settings, root: root, creatingFolders: false)
        } catch {
            add("fabrics", failure: error, context: "coffre.json")
            return
        }
        let missingFolders = Dictionary(settings.fabrics.map { entry in
            (entry.name, AppOptions.resolve(entry.path, against: root))
        }.filter { !FileManager.default.fileExists(atPath: $0.1) }) { first, _ in first }
        for fabric in fabrics {
            let name = "fabric " + fabric.name
            if let folder = missingFolders[fabric.name] {
                add(name, .warning, "no folder \(folder) yet", advice: "The first command creates it; if it should exist, fix the fabric's path in coffre.json")
                continue
            }
            do {
                let vms = try await fabric.discover()
                let silent = vms.filter { protected.contains($0.key) && $0.powerState == .running && $0.agentVersion == nil }
                if silent.isEmpty {
                    add(name, .ok, "reachable, \(vms.count) VMs, \(vms.count { protected.contains($0.key) }) protected")
                } else {
                    add(name, .warning,
                        "reachable, \(vms.count) VMs; no guest agent answers in the running protected VMs \(silent.map(\.key.description).joined(separator: ", "))",
                        advice: "Their backups are crash-consistent only: install and start qemu-guest-agent in them (docs/libvirt.md)")
                }
            } catch {
                add(name, failure: error, context: "discovery")
            }
        }
    }

    /// FUSE and loop devices: what mounting points and their file systems needs.
    private mutating func checkKernel() {
        let fuse = FileManager.default.fileExists(atPath: "/dev/fuse")
        let fusermount = ["/usr/bin/fusermount3", "/bin/fusermount3"].contains { FileManager.default.isExecutableFile(atPath: $0) }
        if fuse && fusermount {
            add("fuse", .ok, "/dev/fuse and fusermount3 are there")
        } else {
            add("fuse", .warning, "\(fuse ? "" : "no /dev/fuse ")\(fusermount ? "" : "no fusermount3")".trimmingCharacters(in: .whitespaces),
                advice: "File recovery (`coffre mount`) needs FUSE: apt install fuse3; in a container, pass --device /dev/fuse")
        }
        if FileManager.default.fileExists(atPath: "/dev/loop-control") {
            add("loop", .ok, "/dev/loop-control is there")
        } else {
            add("loop", .warning, "no /dev/loop-control",
                advice: "Mounting a point's file systems uses loop devices: modprobe loop; in a container, pass the loop devices")
        }
    }
}
