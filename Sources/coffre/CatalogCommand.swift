import ArgumentParser
import CoffreCore
import CoffrePostgres
import CoffreStorage
import Foundation

/// `coffre catalog migrate --to postgres://…`: moving up from the embedded SQLite catalog;
/// `save`, `copies` and `restore --from-vault`: the copies of the catalog kept in the vault.
struct CatalogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog",
        abstract: "The catalog itself: its copies in the vault, restoring it from them, moving it to PostgreSQL.",
        subcommands: [Save.self, Copies.self, Restore.self, Migrate.self])

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy this installation's catalog into an empty PostgreSQL database.",
            discussion: """
                Copies fabrics, VMs, policies, protected items, recovery points, jobs and API tokens from the catalog in use \
                (catalog.sqlite of the data folder, or --catalog) into the database of --to, which must be empty, \
                in one transaction; then reads the copy back and compares it record by record. The source is left \
                as it was, and so is the vault: a catalog names points, the vault holds them. Stop every coffre \
                using the source first: a job queued or in progress is refused. Afterwards start Coffre with \
                --catalog URL (or "catalog" in coffre.json).
                """)

        @OptionGroup var app: AppOptions
        @Option(help: ArgumentHelp("The PostgreSQL database to fill: postgres://USER[:PASSWORD]@HOST[:PORT]/DB.", valueName: "url"))
        var to: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let target = try PostgresURL(to)
                let source = app.catalogBackend(settings: try app.readConfiguration())
                if case .sqlite(let path) = source, !FileManager.default.fileExists(atPath: path) {
                    throw CoffreError.catalogUnreadable(path, reason: "there is no catalog there to migrate")
                }
                if case .postgres(let url) = source, (try? PostgresURL(url)) == target {
                    throw CoffreError(.invalidArgument, "The catalog in use is already \(target)",
                                      workaround: "Pass the URL of another, empty database with --to")
                }
                let from = try await source.open()
                let running = try await from.jobs(JobFilter()).filter { !$0.status.isFinished }
                if let job = running.last {
                    let what = job.vm.map { " of \($0)" } ?? ""
                    throw CoffreError(.anotherOperationInProgress,
                                      "\(running.count) job(s) are queued or in progress in the catalog, the oldest \(job.id) (\(job.type.rawValue)\(what)); nothing was copied",
                                      workaround: "Wait for them to end and stop every coffre using this catalog. A job left by a killed process is marked interrupted by the next coffre command (coffre jobs)")
                }
                let snapshot = try await from.snapshot()
                let into = try await PostgresCatalog.open(url: to)
                defer { into.close() }
                try await into.importSnapshot(snapshot)
                let copy = try await into.snapshot()
                guard copy == snapshot else {
                    let differing = snapshot.differences(from: copy).joined(separator: ", ")
                    throw CoffreError.catalogFailed(into.location, detail: "the copy read back differs from the source in \(differing)")
                }
                try report(snapshot, source: source, target: into.location)
            }
        }

        private func report(_ snapshot: CatalogSnapshot, source: CatalogBackend, target: String) throws {
            let from = source.description
            if json {
                struct Report: Encodable { var from: String; var to: String; var copied: [String: Int] }
                var copied: [String: Int] = [:]
                for (kind, count) in snapshot.counts { copied[kind] = count }
                return try printJSON(Report(from: from, to: target, copied: copied))
            }
            print("Copied the catalog \(from) into \(target), and read it back equal:")
            for (kind, count) in snapshot.counts { print("  \(String(count).leftPadded(to: 8))  \(kind)") }
            print("Start Coffre with --catalog \(target) (or \"catalog\" in coffre.json) to use it; the source is unchanged.")
        }
    }
}

/// Which vault holds the catalog's copies: --vault, else coffre.json's, else the data folder's.
struct CopyVaultOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The vault: a folder or s3://BUCKET/PREFIX (default coffre.json's \"vault\", then the data folder's vault).",
        valueName: "path|url"))
    var vault: String?
    @Option(name: .long, help: "Key file of an encrypted vault (default: the path the vault remembers, or $COFFRE_ENCRYPTION_KEY_FILE).")
    var encryptionKey: String?
    @OptionGroup var s3: S3Options

    func open(_ app: AppOptions, settings: AppConfiguration) throws -> Vault {
        let backend = try vault.map { try VaultBackend.parse($0, s3: s3) } ?? settings.vault ?? .local(path: "vault")
        let key = encryptionKey ?? ProcessInfo.processInfo.environment["COFFRE_ENCRYPTION_KEY_FILE"]
        return try backend.resolved(against: app.dataPath).openVault(encryptionKeyFile: key)
    }
}

extension CatalogCommand {
    struct Save: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a copy of the catalog into the vault now.",
            discussion: """
                Coffre already writes one after every job that changes the catalog and at least daily; this writes one \
                at once (before an upgrade, say). The copy is read in one transaction, compressed, encrypted when the \
                vault is, and kept with the others: the newest 10 and the newest of each of the last 14 days.
                """)

        @OptionGroup var app: AppOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let engine = try await app.makeEngine()
                let copy = try await engine.saveCatalogCopy()
                if json { return try printJSON(copy) }
                print("Saved catalog copy \(copy.name) (\(ByteSize.format(copy.size))) into the vault")
            }
        }
    }

    struct Copies: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the copies of the catalog the vault holds, newest first.")

        @OptionGroup var app: AppOptions
        @OptionGroup var vault: CopyVaultOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let store = VaultPointStore(try vault.open(app, settings: try app.readConfiguration()))
                let copies = try await store.catalogCopies().reversed().map { $0 }
                if json { return try printJSON(copies) }
                guard !copies.isEmpty else { return print("The vault holds no catalog copy yet.") }
                print(pad("NAME", 30) + pad("TAKEN (UTC)", 22) + "SIZE")
                for copy in copies { print(pad(copy.name, 30) + pad(isoTime(copy.takenAt), 22) + ByteSize.format(copy.size)) }
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring the catalog back from a copy in the vault.",
            discussion: """
                Reads the newest copy (or --copy NAME), checks it against its hash (and key), and writes it into the \
                catalog in use (catalog.sqlite of the data folder, --catalog, or --to), which must be empty or absent: \
                move a damaged catalog aside first. The vault decides which points exist: points of the copy whose \
                data the vault no longer holds are left out, and points the vault holds that the copy predates are \
                adopted (kept until deleted, counted crash-consistent), so that nothing the vault holds is swept as \
                uncommitted afterwards. Jobs the copy shows running end as failed. Nothing in the vault is changed.
                """)

        @OptionGroup var app: AppOptions
        @OptionGroup var vault: CopyVaultOptions
        @Flag(name: .customLong("from-vault"), help: "Restore from a copy in the vault (the only source there is).")
        var fromVault = false
        @Option(help: ArgumentHelp("The copy to restore (coffre catalog copies lists them; default the newest).", valueName: "name"))
        var copy: String?
        @Option(help: ArgumentHelp("Write into this empty PostgreSQL database instead of the catalog in use.", valueName: "url"))
        var to: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                guard fromVault else {
                    throw CoffreError(.invalidArgument, "Say where the catalog comes from",
                                      workaround: "Add --from-vault: copies of the catalog are kept in the vault")
                }
                let settings = try app.readConfiguration()
                let opened = try vault.open(app, settings: settings)
                let store = VaultPointStore(opened)
                let copies = try await store.catalogCopies()
                guard let name = copy ?? copies.last?.name else { throw CoffreError.catalogCopyNotFound(nil, vault: opened.path) }
                let restored = try CatalogCopy.decode(try await store.readCatalogCopy(name), name: name)
                let plan = CatalogRestorePlan(copy: restored, stored: try await store.storedPoints(item: nil), at: Date())

                let target = try to.map { _ = try PostgresURL($0); return CatalogBackend.postgres(url: $0) }
                    ?? app.catalogBackend(settings: settings)
                let into = try await target.open()
                guard let importing = into as? any CatalogImporting else {
                    throw CoffreError(.internalError, "The catalog \(target) cannot be filled from a copy",
                                      workaround: "Restore into a SQLite file or a PostgreSQL database")
                }
                do {
                    try await importing.importSnapshot(plan.snapshot)
                } catch let error as CoffreError where error.code == .catalogNotEmpty {
                    guard case .sqlite(let path) = target else { throw error }
                    throw CoffreError(.catalogNotEmpty, error.message,
                                      workaround: "Move \(path) (and its -wal and -shm files) aside, then run this again: the restore writes only into an empty catalog")
                }
                let back = try await into.snapshot()
                guard back == plan.snapshot else {
                    let differing = plan.snapshot.differences(from: back).joined(separator: ", ")
                    throw CoffreError.catalogFailed(target.description, detail: "the restored catalog read back differs from the copy in \(differing)")
                }
                try report(name: name, copy: restored, plan: plan, target: target)
            }
        }

        private func report(name: String, copy: CatalogCopy, plan: CatalogRestorePlan, target: CatalogBackend) throws {
            if json {
                struct Report: Encodable {
                    var copy: String; var takenAt: Date; var into: String; var restored: [String: Int]
                    var dropped: [String]; var adopted: [String]; var unknownItems: [String: [String]]; var endedJobs: [String]
                }
                var restored: [String: Int] = [:]
                for (kind, count) in plan.snapshot.counts { restored[kind] = count }
                return try printJSON(Report(copy: name, takenAt: copy.takenAt, into: target.description, restored: restored,
                                            dropped: plan.dropped.map(\.id), adopted: plan.adopted.map(\.id),
                                            unknownItems: plan.unknownItems, endedJobs: plan.endedJobs))
            }
            print("Restored the catalog copy \(name), taken \(isoTime(copy.takenAt)) by \(copy.takenBy), into \(target.description):")
            for (kind, count) in plan.snapshot.counts { print("  \(String(count).leftPadded(to: 8))  \(kind)") }
            if !plan.adopted.isEmpty {
                print("Adopted \(plan.adopted.count) point(s) the vault holds that the copy predates (kept until deleted, counted crash-consistent): \(plan.adopted.map(\.id).joined(separator: ", "))")
            }
            if !plan.dropped.isEmpty {
                print("Left out \(plan.dropped.count) point(s) of the copy whose data the vault no longer holds (expired after the copy): \(plan.dropped.map(\.id).joined(separator: ", "))")
            }
            for (item, points) in plan.unknownItems.sorted(by: { $0.key < $1.key }) {
                print("Kept in the vault, not listed: \(points.count) point(s) of item \(item), which the copy does not know (protected after it was taken)")
            }
            if !plan.endedJobs.isEmpty {
                print("Ended as failed \(plan.endedJobs.count) job(s) the copy shows queued or running: \(plan.endedJobs.joined(separator: ", "))")
            }
            print("Changes made after \(isoTime(copy.takenAt)) other than points (policies, registrations, settings) are not in the copy: check them.")
        }
    }
}

private func isoTime(_ date: Date) -> String { ISO8601DateFormatter().string(from: date) }
