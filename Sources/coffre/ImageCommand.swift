import ArgumentParser
import CoffreCore
import CoffreSystem
import CoffreStorage
import Foundation

struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Back up, list, restore, mount and expire raw disk images.",
        subcommands: [Backup.self, Points.self, Restore.self, Expire.self, Mount.self, Files.self, Export.self])

    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Back up raw disk images as a new recovery point of an item; prints the point id.",
            discussion: "Example: coffre image backup --vault /srv/coffre --item web01 /var/lib/vm/web01-os.img /var/lib/vm/web01-data.img")
        @OptionGroup var options: VaultOptions
        @Option(help: "The item (VM) the point belongs to.") var item: String
        @Flag(help: "No progress bar, even on a terminal.") var noProgress = false
        @Flag(help: "Print JSON.") var json = false
        @Argument(help: "Raw disk images (each one's base name is its disk name).") var disks: [String]

        func run() async throws {
            try await reportingErrors {
                let vault = try options.open()
                let devices = try disks.map { try RawFileDevice(path: $0) }
                let bar = ProgressBar(enabled: !noProgress, verb: "backup")
                let point = try await vault.backup(item: item, disks: devices, progress: bar.handler)
                bar.finish()
                if json {
                    struct Out: Encodable { var id: String; var blocksAdded: Int; var bytesWritten: Int64; var bytesRead: Int64 }
                    try printJSON(Out(id: point.id, blocksAdded: point.stats.blocksAdded,
                                      bytesWritten: point.stats.bytesWritten, bytesRead: point.stats.bytesRead))
                } else {
                    print(point.id)
                }
            }
        }
    }

    struct Points: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List an item's recovery points with their block accounting.")
        @OptionGroup var options: VaultOptions
        @Option(help: "The item (VM).") var item: String
        @Flag(help: "Print JSON.") var json = false

        struct Row: Encodable {
            struct Disk: Encodable { var name: String; var size: Int64 }
            var id: String
            var time: Date
            var item: String
            var disks: [Disk]
            var blocksAdded: Int
            var blocksOnlyHere: Int
            var bytesFreedIfExpired: Int64
        }

        func run() async throws {
            try await reportingErrors {
                guard Naming.isValid(item) else { throw CoffreError.invalidName("Item name", item) }
                let vault = try options.open()
                let accounting = try vault.accounting()
                let rows = try vault.points(item: item).map { p in
                    let a = accounting[p.id]
                    return Row(id: p.id, time: p.time, item: p.item,
                               disks: p.disks.map { .init(name: $0.name, size: $0.size) },
                               blocksAdded: p.stats.blocksAdded, blocksOnlyHere: a?.blocksOnlyHere ?? 0,
                               bytesFreedIfExpired: a?.bytesFreedIfExpired ?? 0)
                }
                if json { return try printJSON(rows) }
                let formatter = ISO8601DateFormatter()
                print(pad("id", 28) + pad("time", 22) + pad("disks", 6, right: true) + pad("added", 10, right: true)
                      + pad("only here", 11, right: true) + pad("freed if expired", 18, right: true))
                for row in rows {
                    print(pad(row.id, 28) + pad(formatter.string(from: row.time), 22)
                          + pad("\(row.disks.count)", 6, right: true) + pad("\(row.blocksAdded)", 10, right: true)
                          + pad("\(row.blocksOnlyHere)", 11, right: true)
                          + pad(ByteSize.format(row.bytesFreedIfExpired), 18, right: true))
                }
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a point's disks as sparse raw files (named like the originals) or qcow2 images, one per disk.",
            discussion: """
                Examples:
                  coffre image restore --vault /srv/coffre --point rp-20261122T101530-3f9a1c2b --to /tmp/web01
                  coffre image restore --vault /srv/coffre --point rp-… --to /tmp/web01 --format qcow2   (disk.raw → disk.qcow2)
                """)
        @OptionGroup var options: VaultOptions
        @Option(help: "The recovery point id.") var point: String
        @Option(help: "Target folder (created when missing).") var to: String
        @Option(help: "raw (sparse raw files) or qcow2.") var format = "raw"
        @Flag(help: "Replace files that already exist in the target folder.") var overwrite = false
        @Flag(help: "No progress bar, even on a terminal.") var noProgress = false

        func run() async throws {
            try await reportingErrors {
                let format = try DiskFormat(parsing: format)
                let vault = try options.open()
                let bar = ProgressBar(enabled: !noProgress, verb: "restore")
                let paths = try await vault.restore(point: point, to: to, format: format, overwrite: overwrite, progress: bar.handler)
                bar.finish()
                paths.forEach { print($0) }
            }
        }
    }

    struct Expire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Expire a recovery point, then free the blocks no other point needs.",
            discussion: "Other points restore exactly as before. --no-gc leaves the freeing to a later `coffre vault gc`.")
        @OptionGroup var options: VaultOptions
        @Option(help: "The recovery point id.") var point: String
        @Flag(help: "Do not collect garbage afterwards.") var noGc = false

        func run() async throws {
            try await reportingErrors {
                let vault = try options.open()
                try vault.expire(point)
                if !noGc { try vault.collectGarbage() }
            }
        }
    }
}
