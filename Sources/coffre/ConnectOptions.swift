import ArgumentParser
import CoffreCore
import CoffreServer
import Foundation

/// Options of the commands that work either in-process on a data folder or against a
/// running `coffre serve` (remote mode).
struct ConnectOptions: ParsableArguments {
    @OptionGroup var app: AppOptions

    @Option(help: ArgumentHelp(
        "Work against a running `coffre serve` at this URL instead of a data folder (default $COFFRE_SERVER).",
        valueName: "url"))
    var server: String?

    @Option(help: ArgumentHelp(
        "Bearer token for --server (default $COFFRE_TOKEN). Prefer --token-file: a token on the command line shows in `ps`.",
        valueName: "token"))
    var token: String?

    @Option(help: ArgumentHelp("File holding the token for --server (default $COFFRE_TOKEN_FILE).", valueName: "path"))
    var tokenFile: String?

    @Option(help: ArgumentHelp(
        "Trust only the https:// server certificate with this SHA-256 fingerprint, as `coffre serve` prints it (default $COFFRE_FINGERPRINT).",
        valueName: "sha256"))
    var fingerprint: String?

    @Option(help: ArgumentHelp(
        "PEM file of the authorities to trust for an https:// --server instead of the system's (default $COFFRE_SERVER_CA).",
        valueName: "path"))
    var serverCa: String?

    /// The server to use, if any: `--server`, else `COFFRE_SERVER`.
    var serverURL: String? {
        let value = server ?? ProcessInfo.processInfo.environment["COFFRE_SERVER"]
        return value?.isEmpty == false ? value : nil
    }

    /// The remote plane when a server is named, else the engine of the data folder.
    func connect() async throws -> any ControlPlane {
        guard serverURL != nil else { return LocalControlPlane(engine: try await app.makeEngine()) }
        if app.data != nil {
            throw CoffreError(.invalidOption, "Give either --server or --data, not both",
                              workaround: "--data names a folder this process opens; with --server the server uses its own")
        }
        return try remote()
    }

    /// The server, for what exists only there (tokens).
    func remote() throws -> RemoteControlPlane {
        guard let url = serverURL else {
            throw CoffreError(.serverRequired, "This command talks to a running server",
                              workaround: "Give --server URL (or COFFRE_SERVER) and an admin token")
        }
        return try RemoteControlPlane(server: url, token: try resolveToken(), trust: try resolveTrust())
    }

    /// `--fingerprint` (or $COFFRE_FINGERPRINT), else `--server-ca` (or $COFFRE_SERVER_CA), else the system's.
    private func resolveTrust() throws -> ServerTrust {
        let environment = ProcessInfo.processInfo.environment
        let pin = fingerprint ?? environment["COFFRE_FINGERPRINT"].flatMap { $0.isEmpty ? nil : $0 }
        let authorities = serverCa ?? environment["COFFRE_SERVER_CA"].flatMap { $0.isEmpty ? nil : $0 }
        if let pin {
            guard authorities == nil else {
                throw CoffreError(.invalidOption, "Give either --fingerprint or --server-ca, not both",
                                  workaround: "--fingerprint pins one certificate; --server-ca trusts the authorities that sign them")
            }
            guard let normalized = ServerTLS.normalizedFingerprint(pin) else {
                throw CoffreError(.invalidOption, "'\(pin)' is not a SHA-256 fingerprint",
                                  workaround: "Give the 64 hex digits `coffre serve` prints (colons optional), e.g. 3F:A2:…")
            }
            return .fingerprint(normalized)
        }
        return authorities.map { .authorities(file: $0) } ?? .system
    }

    private func resolveToken() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        if let token = token ?? environment["COFFRE_TOKEN"], !token.isEmpty { return token }
        guard let path = tokenFile ?? environment["COFFRE_TOKEN_FILE"], !path.isEmpty else {
            throw CoffreError(.tokenMissing, "--server needs a token",
                              workaround: "Give --token-file PATH (the server's first admin token is in its data folder's admin-token file), --token or COFFRE_TOKEN")
        }
        guard let data = FileManager.default.contents(atPath: path),
              case let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines),
              !text.isEmpty
        else {
            throw CoffreError(.tokenMissing, "Cannot read a token from \(path)", workaround: "Check the path and that the file holds the token")
        }
        return text
    }
}
