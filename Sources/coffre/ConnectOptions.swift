import ArgumentParser
import CoffreCore
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
        return try RemoteControlPlane(server: url, token: try resolveToken())
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
