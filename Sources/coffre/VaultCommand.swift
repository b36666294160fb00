import ArgumentParser
import CoffreCore
import CoffreStorage
import Foundation

struct VaultCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vault", abstract: "Create and maintain vaults.",
        subcommands: [Create.self, Stats.self, GC.self, Verify.self, Repair.self, Upgrade.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a vault in a new or empty folder, or in an S3 bucket.",
            discussion: """
                Examples:
                  coffre vault create /srv/coffre --encryption-key /root/coffre.key
                  coffre vault create s3://backups/coffre --endpoint https://rgw.example.org --credentials /root/.coffre-s3
                The vault's objects go under PREFIX/ of the bucket, which must exist (or pass --create-bucket).
                """)

        @Argument(help: "Folder of the new vault, or s3://BUCKET/PREFIX.") var path: String
        @OptionGroup var s3: S3Options
        @Flag(help: "Create the S3 bucket first when it does not exist.") var createBucket = false
        @Option(help: "Block size, a power of two from 16KiB to 4MiB.") var blockSize = "64KiB"
        @Option(help: "Encrypt with this key file (created, mode 600, when it does not exist).") var encryptionKey: String?
        @Option(help: "zstd level, -7 to 19 (negative: faster, larger).") var compressionLevel: Int32 = VaultConfiguration.defaultCompressionLevel
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                guard let size = ByteSize.parse(blockSize), VaultConfiguration.allowedBlockSizes.contains(size) else {
                    throw CoffreError.invalidBlockSize(blockSize)
                }
                guard (-7...19).contains(compressionLevel) else {
                    throw CoffreError(.invalidOption, "--compression-level must be between -7 and 19",
                                      workaround: "Use 1 (the default) unless measurements say otherwise")
                }
                let vault = try VaultBackend.parse(path, s3: s3).createVault(
                    blockSize: size, encryptionKeyFile: encryptionKey, compressionLevel: compressionLevel,
                    createBucket: createBucket)
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
                    points          \(stats.points)
                    logical bytes   \(ByteSize.format(stats.logicalBytes))
                    stored chunks   \(stats.storedChunks) (\(ByteSize.format(stats.storedBytes)))
                    index objects   \(stats.indexChunks) (\(ByteSize.format(stats.indexBytes)))
                    packs           \(stats.packs) (\(ByteSize.format(stats.packBytes)))
                    unused          \(ByteSize.format(stats.unusedBytes)) (\(String(format: "%.1f", stats.unusedShare * 100)) % of the packs)
                    index segments  \(stats.indexSegments)
                    """)
                print("objects         \(stats.objects) (\(ByteSize.format(stats.objectBytes)))")
                for record in [stats.lastBackup, stats.lastCollection].compactMap({ $0 }) {
                    let r = record.requests
                    var line = "last \(record.operation) \(record.operation == "backup" ? "    " : "")\(r.total) requests "
                        + "(\(r.put) PUT, \(r.get) GET, \(r.head) HEAD, \(r.list) LIST, \(r.delete) DELETE; \(r.retries) retried), "
                        + "\(ByteSize.format(r.bytesSent)) sent, \(ByteSize.format(r.bytesReceived)) received"
                    if let read = record.bytesRead, read > 0 {
                        line += String(format: "; %.1f requests per GiB read", Double(r.total) / (Double(read) / Double(1 << 30)))
                    }
                    print(line)
                }
                if stats.condemnedPacks > 0 {
                    print("condemned packs \(stats.condemnedPacks) (deleted by the next collection once the sessions running when they were condemned end)")
                }
            }
        }
    }

    struct GC: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc", abstract: "Remove stored blocks that no recovery point references.")
        @OptionGroup var options: VaultOptions
        @Option(help: "Repack partly used packs until at most this percentage of the stored bytes is unused (0 repacks every pack with garbage).")
        var maxUnused: Double = Vault.maxUnusedShare * 100
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                guard (0...100).contains(maxUnused) else {
                    throw CoffreError(.invalidPercent, "--max-unused must be between 0 and 100")
                }
                let report = try options.open().collectGarbage(unusedLimit: maxUnused / 100)
                if json { return try printJSON(report) }
                print("removed \(report.removedChunks) chunks and \(report.removedIndexObjects) index objects (\(ByteSize.format(report.removedBytes))); kept \(report.keptChunks) chunks")
                print("packs: \(report.packsDeleted) deleted (\(ByteSize.format(report.packBytesDeleted))), \(report.packsRepacked) repacked (\(ByteSize.format(report.bytesRewritten)) rewritten), \(report.packsRecovered) kept after all")
                if report.waitingForSessions > 0 {
                    print("\(report.packsCondemned) packs condemned; they are deleted by a later collection, once the \(report.waitingForSessions) sessions running now have ended")
                }
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

    struct Repair: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rebuild the vault's chunk index from the packs' own tables.",
            discussion: "Run it when the index is damaged or lost; backups and restores may run meanwhile, a collection may not.")
        @OptionGroup var options: VaultOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let report = try options.open().repairIndex()
                if json { return try printJSON(report) }
                print("indexed \(report.records) objects of \(report.packs) packs in \(report.segments) segments")
                for pack in report.unreadablePacks { print("unreadable pack  \(pack)") }
            }
        }
    }

    struct Upgrade: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Convert a vault of format 1 (one file per block) to format 2 (packs), in place.",
            discussion: """
                Crash-safe and resumable: killed at any moment, the vault stays readable and a new run \
                goes on. No backup, restore or collection may run meanwhile.
                """)
        @Argument(help: "The vault folder.") var path: String
        @Option(help: "Key file of an encrypted vault (default: the path the vault remembers, or $COFFRE_ENCRYPTION_KEY_FILE).")
        var encryptionKey: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let key = encryptionKey ?? ProcessInfo.processInfo.environment["COFFRE_ENCRYPTION_KEY_FILE"]
                let report = try Vault.upgrade(at: path, encryptionKeyFile: key)
                if json { return try printJSON(report) }
                if report.alreadyUpgraded {
                    print("\(path) is in format 2 already")
                } else {
                    print("converted \(report.chunks) chunks and \(report.indexObjects) index objects into \(report.packs) packs (\(report.skipped) converted by an earlier run)")
                }
                for id in report.damaged { print("damaged, not copied  \(id)") }
            }
        }
    }
}
