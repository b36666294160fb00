import ArgumentParser
import CoffreCore
import CoffreServer
import Foundation

/// `coffre token`: API tokens of a running server (admin only).
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Create and list the server's API tokens (needs --server and an admin token).",
        discussion: """
            Tokens live in the catalog (only hashes), so every node sharing it accepts them; the secret is printed once.
            Example:
              coffre token create ci-reader --role reader --server http://127.0.0.1:8080 --token-file coffre-data/admin-token
            """,
        subcommands: [Create.self, List.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token and print its secret (shown only once).")
        @OptionGroup var options: ConnectOptions
        @Argument(help: "A name for the token (who or what uses it).") var name: String
        @Option(help: "reader (look), operator (run jobs, restore to the server's restore folder) or admin (delete data, replace disks, tokens).")
        var role: Role
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let created = try await options.remote().createToken(name: name, role: role)
                if json { return try printJSON(created) }
                print(created.token)
                FileHandle.standardError.write(Data("coffre: token '\(created.name)' (\(created.role.rawValue)) created; it is shown only now\n".utf8))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tokens: name, role, creation time (never the secrets).")
        @OptionGroup var options: ConnectOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let tokens = try await options.remote().tokens()
                if json { return try printJSON(tokens) }
                print(pad("name", 24) + pad("role", 10) + "created (UTC)")
                for token in tokens { print(pad(token.name, 24) + pad(token.role.rawValue, 10) + ISO8601DateFormatter().string(from: token.createdAt)) }
            }
        }
    }
}

extension Role: ExpressibleByArgument {}
