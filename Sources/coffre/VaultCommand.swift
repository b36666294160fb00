import ArgumentParser
import CoffreCore
import CoffreStorage
import Foundation

struct VaultCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vault", abstract: "Create and maintain vaults.",
        subcommands: [Create.self, Stats.self, GC.self, Verify.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a vault in a new or empty folder.",
            discussion: "Example: coffre vault create /srv/coffre --encryption-key /root/coffre.key")

        @Argument(help: "Folder of the new vault.") var path: String
        @Option(help: "Block size, a power of two from 16KiB to 4MiB.") var blockSize = "64KiB"
        @Option(help: "Encrypt with this key file (created, mode 600, when it does not exist).") var encryptionKey: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                guard let size = ByteSize.parse(blockSize), VaultConfiguration.allowedBlockSizes.contains(size) else {
                    throw CoffreError.invalidBlockSize(blockSize)
                }
                let vault = try Vault.create(at: path, blockSize: size, encryptionKeyFile: encryptionKey)
                if json {
                    struct Out: Encodable { var path: String; var blockSize: Int; var encrypted: Bool }
                    try printJSON(Out(path: vault.path, blockSize: vault.blockSize, encrypted: vault.isEncrypted))
                } else {
                    print(vault.path)
                }
            }
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show what the vault holds.")
        @OptionGroup var options: VaultOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let stats = try options.open().stats()
                if json { return try printJSON(stats) }
                print("""
                    points         \(stats.points)
                    logical bytes  \(ByteSize.format(stats.logicalBytes))
                    stored chunks  \(stats.storedChunks) (\(ByteSize.format(stats.storedBytes)))
                    index objects  \(stats.indexChunks) (\(ByteSize.format(stats.indexBytes)))
                    """)
            }
        }
    }

    struct GC: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc", abstract: "Remove stored blocks that no recovery point references.")
        @OptionGroup var options: VaultOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let report = try options.open().collectGarbage()
                if json { return try printJSON(report) }
                print("removed \(report.removedChunks) chunks and \(report.removedIndexObjects) index objects (\(ByteSize.format(report.removedBytes))); kept \(report.keptChunks) chunks")
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-read stored blocks, check their digests, and name the recovery points a damaged block breaks.",
            discussion: "Exits 0 when the vault is clean, 3 when damage was found.")
        @OptionGroup var options: VaultOptions
        @Option(help: "Share of data chunks to re-read, 0–100 (index objects are always read).") var percent: Double = 100
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            var clean = true
            try await reportingErrors {
                guard (0...100).contains(percent) else {
                    throw CoffreError(.invalidPercent, "--percent must be between 0 and 100")
                }
                let report = try options.open().verify(percent: percent)
                clean = report.clean
                if json { return try printJSON(report) }
                print("checked \(report.checkedChunks) chunks and \(report.checkedIndexObjects) index objects: \(report.clean ? "clean" : "DAMAGED")")
                for id in report.damagedChunks { print("damaged  \(id)") }
                for id in report.missingChunks { print("missing  \(id)") }
                for id in report.brokenPoints { print("broken point  \(id)") }
            }
            if !clean { throw ExitCode(3) }
        }
    }
}
