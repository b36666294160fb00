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
            HTTPS: --tls-cert and --tls-key, or --tls-self-signed (a certificate made on the first start in
            <data>/tls; its SHA-256 fingerprint is printed at every start, for `coffre --fingerprint`).
            Plain HTTP is refused on an address other than loopback unless --allow-plain-http.
            SIGTERM or Ctrl-C stops gracefully: running jobs are cancelled and recorded Cancelled.
            Examples:
              coffre serve --demo
              coffre serve --data /var/lib/coffre --host 0.0.0.0 --port 9000 --tls-self-signed
              coffre serve --catalog postgres://coffre@db:5432/coffre --vault s3://vault/prod --endpoint http://rgw:7480
              curl -H "Authorization: Bearer $(cat coffre-data/admin-token)" \\
                http://127.0.0.1:8080/api/v1/dashboard
            The API is described in docs/api.md and served at /api/v1/openapi.json.
            """)
    @OptionGroup var app: AppOptions
    @Option(help: "Address to listen on (default coffre.json's \"host\", then 127.0.0.1).") var host: String?
    @Option(help: "Port to listen on, 0 for any free port, printed at start (default coffre.json's \"port\", then 8080).") var port: Int?
    @Flag(help: "Create the sample VMs of `coffre demo` in the local fabric first.") var demo = false
    @Option(help: ArgumentHelp("Serve HTTPS with this PEM certificate chain, the server's certificate first (default coffre.json's \"tlsCertificate\").", valueName: "path"))
    var tlsCert: String?
    @Option(help: ArgumentHelp("The PEM private key of --tls-cert (default coffre.json's \"tlsKey\").", valueName: "path"))
    var tlsKey: String?
    @Flag(help: "Serve HTTPS with a self-signed certificate made on the first start in <data>/tls (or coffre.json's \"tlsSelfSigned\"); its fingerprint is printed.")
    var tlsSelfSigned = false
    @Flag(help: "Allow plain HTTP on an address other than loopback (or coffre.json's \"allowPlainHTTP\"): tokens would cross the network in clear.")
    var allowPlainHttp = false
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
            let settings = try app.loadConfiguration()
            let host = host ?? settings.host ?? "127.0.0.1"
            let port = port ?? settings.port ?? 8080
            let tls = try serverTLS(settings, dataPath: dataPath, host: host)
            if let tls { say("TLS certificate \(tls.certificateFile), SHA-256 fingerprint \(tls.fingerprint)") }
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
                metricsRegistry: registry, tls: tls,
                onServerRunning: { [host] port in
                    engine.announce(address: "\(host):\(port)")
                    say("Coffre listens on \(tls == nil ? "http" : "https")://\(host):\(port)/ (data \(dataPath))")
                })
            let group = try makeServiceGroup(engine: engine, tokens: tokens, configuration: configuration)
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

extension ServeCommand {
    /// The certificate to serve HTTPS with, if any; nil (plain HTTP) only on loopback unless allowed.
    func serverTLS(_ settings: AppConfiguration, dataPath: String, host: String) throws -> ServerTLS? {
        if let certificate = tlsCert ?? settings.tlsCertificate {
            guard let key = tlsKey ?? settings.tlsKey else {
                throw CoffreError(.invalidOption, "--tls-cert needs --tls-key", workaround: "Give the certificate's PEM private key with --tls-key (or \"tlsKey\" in coffre.json)")
            }
            return try ServerTLS.load(certificateFile: AppOptions.resolve(certificate, against: dataPath),
                                      keyFile: AppOptions.resolve(key, against: dataPath))
        }
        if tlsKey != nil {
            throw CoffreError(.invalidOption, "--tls-key needs --tls-cert", workaround: "Give the PEM certificate chain with --tls-cert")
        }
        if tlsSelfSigned || settings.tlsSelfSigned == true {
            let files = try SelfSignedCertificate.ensure(dataPath: dataPath, host: host)
            if files.created { say("Made a self-signed TLS certificate in \(files.certificate), valid 10 years") }
            return try ServerTLS.load(certificateFile: files.certificate, keyFile: files.key)
        }
        guard Self.isLoopback(host) || allowPlainHttp || settings.allowPlainHTTP == true else {
            throw CoffreError(.invalidConfiguration, "Plain HTTP on \(host) would send tokens over the network in clear",
                              workaround: "Serve HTTPS (--tls-self-signed, or --tls-cert and --tls-key), listen on 127.0.0.1, or pass --allow-plain-http")
        }
        return nil
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// Prints a line at once, even into a file or a pipe: scripts wait for the "listens on" line.
private func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
