import ArgumentParser
import CoffreCore
import CoffreStorage
import CoffreSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

@main
struct Coffre: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coffre",
        abstract: "Coffre: a self-hosted backup vault for virtual machines.",
        discussion: """
            VMs (data folder ./coffre-data or --data DIR: SQLite catalog, vault, local fabric):
              coffre discover
              coffre vm list --unregistered
              coffre register web01 db01
              coffre policy create nightly --daily 22:00 --time-zone Europe/Paris --keep-days 30
              coffre protect web01 db01 --policy nightly
              coffre backup web01
              coffre jobs --since 24h
              coffre points web01
              coffre restore web01 --point rp-… --to ./restored
              coffre files web01 --point rp-… /disk0.img/part1/etc     (as root: file recovery)
              coffre mount web01 --point rp-… /mnt/web01 --partitions
            The same commands against a running `coffre serve` (remote mode):
              export COFFRE_SERVER=http://127.0.0.1:8080 COFFRE_TOKEN_FILE=coffre-data/admin-token
              coffre backup web01            (a progress bar on a terminal; --json for scripts)
            Plain disk images, no catalog:
              coffre vault create ./vault
              coffre image backup --vault ./vault --item web01 disk0.img disk1.img
            """,
        version: "coffre " + BuildInfo.versionLine(coffreVersion),
        subcommands: [
            DiscoverCommand.self, VMCommand.self, RegisterCommand.self, PolicyCommand.self, ProtectCommand.self,
            BackupCommand.self, JobsCommand.self, JobCommand.self, PointsCommand.self, RestoreCommand.self, VerifyCommand.self,
            MountCommand.self, UnmountCommand.self, FilesCommand.self, ExportCommand.self,
            StopProtectionCommand.self, UndeleteCommand.self, ResumeCommand.self, DashboardCommand.self,
            SchedulerCommand.self, ServeCommand.self, DoctorCommand.self, TokenCommand.self, NodesCommand.self, CatalogCommand.self, DemoCommand.self, VaultCommand.self, ImageCommand.self,
        ]
    )
}

/// Options every vault command takes.
struct VaultOptions: ParsableArguments {
    @Option(name: .long, help: "The vault: a folder, or s3://BUCKET/PREFIX with --endpoint.")
    var vault: String

    @Option(name: .long, help: "Key file of an encrypted vault (default: the path the vault remembers, or $COFFRE_ENCRYPTION_KEY_FILE).")
    var encryptionKey: String?

    @OptionGroup var s3: S3Options

    func open() throws -> Vault {
        let key = encryptionKey ?? ProcessInfo.processInfo.environment["COFFRE_ENCRYPTION_KEY_FILE"]
        return try VaultBackend.parse(vault, s3: s3).openVault(encryptionKeyFile: key)
    }
}

/// How to reach a vault named s3://BUCKET/PREFIX. Credentials come from AWS_ACCESS_KEY_ID,
/// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or the file --credentials names.
struct S3Options: ParsableArguments {
    @Option(name: .long, help: "S3 endpoint of an s3:// vault, http(s)://HOST[:PORT] (default $AWS_ENDPOINT_URL).")
    var endpoint: String?

    @Option(name: .long, help: "Region of the bucket (default $AWS_REGION or us-east-1).")
    var region: String?

    @Option(name: .long, help: "AWS-style credentials file (default: the AWS_* environment variables).")
    var credentials: String?

    @Option(name: .long, help: "PEM file of the certificate authorities to trust for an https endpoint.")
    var caFile: String?

    @Flag(name: .long, help: "Virtual-hosted requests (BUCKET.host) instead of path-style (host/BUCKET).")
    var virtualHosted = false
}

/// Runs a command body and turns a `CoffreError` into one line on stderr and exit code 1.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as CoffreError {
        FileHandle.standardError.write(Data("coffre: error \(error)\n".utf8))
        throw ExitCode(1)
    }
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
