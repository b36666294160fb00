import ArgumentParser
import CoffreCore
import CoffrePostgres
import Foundation

/// `coffre catalog migrate --to postgres://…`: moving up from the embedded SQLite catalog.
struct CatalogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog",
        abstract: "The catalog itself: move it to PostgreSQL.",
        subcommands: [Migrate.self])

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
            let from: String = switch source {
            case .sqlite(let path): path
            case .postgres(let url): (try? PostgresURL(url).description) ?? "postgres"
            }
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
