import ArgumentParser
import CoffreCore
import CoffreEngine
import CoffreServer
import CoffreSystem
import Foundation
import Logging
import Metrics
import Prometheus

/// `coffre serve`: the engine (scheduler, retention) and the HTTP server in one process.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the vault: scheduler, retention, REST API (/api/v1), /metrics and the dashboard.",
        discussion: """
            The first start creates an admin token in <data>/admin-token (mode 600) and prints its path.
            SIGTERM or Ctrl-C stops gracefully: running jobs are cancelled and recorded Cancelled.
            Examples:
              coffre serve --demo
              coffre serve --data /var/lib/coffre --host 0.0.0.0 --port 9000
              coffre serve --catalog postgres://coffre@db:5432/coffre --vault s3://vault/prod --endpoint http://rgw:7480
              curl -H "Authorization: Bearer $(cat coffre-data/admin-token)" \\
                http://127.0.0.1:8080/api/v1/dashboard
            The API is described in docs/api.md and served at /api/v1/openapi.json.
            """)
    @OptionGroup var app: AppOptions
    @Option(help: "Address to listen on (default coffre.json's \"host\", then 127.0.0.1).") var host: String?
    @Option(help: "Port to listen on, 0 for any free port, printed at start (default coffre.json's \"port\", then 8080).") var port: Int?
    @Flag(help: "Create the sample VMs of `coffre demo` in the local fabric first.") var demo = false
    @Option(help: ArgumentHelp(
        "The vault: a folder or s3://BUCKET/PREFIX (default coffre.json's \"vault\", then the data folder's vault). Nodes sharing a catalog share it.",
        valueName: "path|s3-url"))
    var vault: String?
    @OptionGroup var s3: S3Options

    func run() async throws {
        try await reportingErrors {
            let logger = Logger(label: "coffre")
            let dataPath = app.dataPath
            if demo {
                let created = try DemoFabric.populate(dataPath: dataPath)
                if !created.isEmpty { say("Created \(created.count) sample VMs in \(dataPath)/fabric") }
            }
            try FileManager.default.createDirectory(atPath: dataPath, withIntermediateDirectories: true)
            let settings = try app.loadConfiguration()
            let host = host ?? settings.host ?? "127.0.0.1"
            let port = port ?? settings.port ?? 8080
            let engine = try await app.makeEngine(vault: try vault.map { try VaultBackend.parse($0, s3: s3) }, serving: true,
                                                  settings: settings)
            let (tokens, newTokenFile) = try await TokenStore.openCreatingAdmin(catalog: engine.catalog, dataFolder: dataPath) { path, bytes in
                try await runOnThread { _ in try FileIO.writeFileAtomically(path, bytes, mode: 0o600) }
            }
            if let newTokenFile { say("Admin token written to \(newTokenFile) (mode 600); send it as 'Authorization: Bearer TOKEN'") }
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            let configuration = ServerConfiguration(
                host: host, port: port, logger: logger, restoreRoot: dataPath + "/restores",
                metricsRegistry: registry,
                onServerRunning: { [host] port in
                    engine.announce(address: "\(host):\(port)")
                    say("Coffre listens on http://\(host):\(port)/ (data \(dataPath))")
                })
            let group = makeServiceGroup(engine: engine, tokens: tokens, configuration: configuration)
            do {
                try await group.run()
            } catch {
                await engine.fileBrowser?.closeAll()
                throw error
            }
            // Points mounted for file recovery are unmounted before the process ends.
            await engine.fileBrowser?.closeAll()
        }
    }
}

/// Prints a line at once, even into a file or a pipe: scripts wait for the "listens on" line.
private func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
