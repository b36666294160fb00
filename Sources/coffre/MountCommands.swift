import ArgumentParser
import CoffreCore
import CoffreMount
import CoffreNBD
import CoffreSystem
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where a mount or a browse gets its point: a VM's point through the catalog, or a point of a
/// vault named on the command line.
enum PointSource {
    /// Opens the point. Mounts read the vault from this process: they need the data folder
    /// (or the vault), not a server.
    static func open(vm: String, point: String, options: ConnectOptions) async throws -> any PointDisks {
        if options.serverURL != nil {
            throw CoffreError(.invalidOption, "Mounts and file recovery read the vault from this machine; they do not go through --server",
                              workaround: "Run the command on the vault's host with --data DIR (or COFFRE_DATA), without --server")
        }
        let engine = try await options.app.makeEngine()
        return try await engine.openPoint(vm, point: point)
    }

    static func open(vault options: VaultOptions, point: String) async throws -> any PointDisks {
        try await runOnThread { _ in try options.open().openPoint(point) }
    }
}

/// What mount, files and image mount share.
enum MountRunner {
    /// Mounts, prints the layout, and stays until Ctrl-C, SIGTERM, or an unmount from outside.
    static func mountAndWait(_ disks: any PointDisks, at directory: String, partitions: Bool, json: Bool) async throws {
        let time = Date()
        let mount = try await runOnThread { _ in
            try PointMount.mount(disks, at: directory, options: .init(partitions: partitions, time: time))
        }
        if json {
            struct Out: Encodable { var directory: String; var point: String; var fileSystems: [PointMount.FileSystem] }
            try printJSON(Out(directory: mount.directory, point: mount.pointID, fileSystems: mount.fileSystems))
        } else {
            print("point \(mount.pointID) mounted read-only at \(mount.directory)")
            if partitions {
                for fs in mount.fileSystems {
                    let state = fs.mounted ? "" : "  (not mounted: \(fs.note ?? "?"))"
                    print("  \(mount.directory)/\(fs.path)  \(fs.kind.rawValue)  \(ByteSize.format(fs.size))\(state)")
                }
            } else {
                for disk in disks.readableDisks { print("  \(mount.directory)/\(disk.name)  \(ByteSize.format(disk.size))") }
            }
            print("stop with Ctrl-C, or `coffre unmount \(mount.directory)`")
        }
        fflush(nil)  // the layout reaches a pipe before the wait
        let stop = SignalStop { lazy in
            do {
                try mount.unmount(lazy: lazy)
            } catch {
                FileHandle.standardError.write(Data("coffre: \(error); detaching it lazily\n".utf8))
                try? mount.unmount(lazy: true)
            }
        }
        _ = await runOnThread { _ in mount.wait() }
        stop.cancel()
        // Ended from outside (coffre unmount): release the point.
        try await runOnThread { _ in try mount.unmount(lazy: true) }
        if let failure = mount.readFailure {
            FileHandle.standardError.write(Data("coffre: some reads failed while mounted: \(failure)\n".utf8))
        }
    }

    /// Mounts the point with its file systems in a private folder for the time of `body`.
    static func withFiles<T: Sendable>(_ disks: any PointDisks, _ body: @escaping @Sendable (PointFiles) throws -> T) async throws -> T {
        try await runOnThread { _ in
            let base = AppOptions.runDirectory()
            try FileIO.makeDirectories(base, mode: 0o700)
            let directory = base + "/files-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try FileIO.makeDirectory(directory, mode: 0o700)
            defer { rmdir(directory) }
            let mount = try PointMount.mount(disks, at: directory, options: .init(partitions: true))
            defer { try? mount.unmount(lazy: true) }
            return try body(PointFiles(mount))
        }
    }

    static func printListing(_ listing: PointListing, json: Bool) throws {
        if json { return try printJSON(listing.entry.kind == .directory ? listing.children : [listing.entry]) }
        let formatter = ISO8601DateFormatter()
        for entry in listing.entry.kind == .directory ? listing.children : [listing.entry] {
            let type = switch entry.kind {
            case .directory: "d"
            case .symlink: "l"
            case .file: "-"
            case .other: "?"
            }
            let mode = type + String(entry.mode, radix: 8).leftPadded(to: 4)
            var name = entry.name
            if let target = entry.target { name += " -> " + target }
            if let fs = entry.fileSystem { name += "  [\(fs)]" }
            if let note = entry.note { name += "  (\(note))" }
            let time = entry.modified.timeIntervalSince1970 == 0 ? "-" : formatter.string(from: entry.modified)
            print([mode, "\(entry.uid):\(entry.gid)".leftPadded(to: 11), "\(entry.size)".leftPadded(to: 12), time.leftPadded(to: 20), name]
                .joined(separator: " "))
        }
    }

    static func printCopy(_ report: PointCopyReport, json: Bool) throws {
        if json { return try printJSON(report) }
        print("\(report.destination): \(report.files) files, \(report.directories) folders, \(report.symlinks) symbolic links, \(ByteSize.format(report.bytes))")
        for path in report.skipped { print("skipped (a socket or a device node): \(path)") }
    }
}

/// Runs `stop` on a thread of its own at the first SIGINT, SIGTERM or SIGHUP (lazily at a
/// second one), until cancelled.
final class SignalStop: @unchecked Sendable {  // its sources are set once, and cancel is thread-safe
    private let sources: [any DispatchSourceSignal]

    init(_ stop: @escaping @Sendable (_ lazy: Bool) -> Void) {
        let count = Mutex(0)
        let queue = DispatchQueue(label: "coffre.signals")
        sources = [SIGINT, SIGTERM, SIGHUP].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                let n = count.withLock { $0 += 1; return $0 }
                Thread.detachNewThread { stop(n > 1) }
            }
            source.resume()
            return source
        }
    }

    func cancel() {
        sources.forEach { $0.cancel() }
    }
}

struct MountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount", abstract: "Mount a recovery point read-only: its disks as files, or with --partitions the file systems on them.",
        discussion: """
            Stays until Ctrl-C or `coffre unmount DIR`; needs root (FUSE and loop devices).
              coffre mount web01 --point rp-… /mnt/web01                 (/mnt/web01/<disk>: the raw disks)
              coffre mount web01 --point rp-… /mnt/web01 --partitions    (/mnt/web01/<disk>/part<N>/: ext2/3/4, xfs, btrfs, vfat, ntfs)
            Nothing is written to the point: the file systems are mounted ro, without journal replay.
            """)
    @OptionGroup var options: ConnectOptions
    @Argument(help: "The VM, as name or cloudService/name.") var vm: String
    @Option(help: "The recovery point id.") var point: String
    @Argument(help: "An empty folder to mount on.") var directory: String
    @Flag(help: "Mount the file systems of the disks' partitions.") var partitions = false
    @Flag(help: "Print the layout as JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let disks = try await PointSource.open(vm: vm, point: point, options: options)
            try await MountRunner.mountAndWait(disks, at: directory, partitions: partitions, json: json)
        }
    }
}

struct UnmountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unmount", abstract: "Unmount what `coffre mount` mounted at a folder, also after that process was killed.")
    @Argument(help: "The folder.") var directory: String
    @Flag(help: "Detach file systems still in use now; the kernel lets go of them when they are closed.") var lazy = false

    func run() async throws {
        try await reportingErrors {
            let removed = try await runOnThread { _ in try PointMount.clear(directory, lazy: lazy) }
            removed.forEach { print("unmounted \($0)") }
        }
    }
}

struct FilesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "files", abstract: "List and copy out files of a recovery point's file systems.",
        discussion: """
            Paths are /<disk>/part<N>/… (part0: a file system on the whole disk). Needs root.
              coffre files web01 --point rp-…                       (the disks and their file systems)
              coffre files web01 --point rp-… /os.img/part1/etc
              coffre files get web01 --point rp-… /os.img/part1/etc/nginx --to /tmp/restore
            """,
        subcommands: [List.self, Get.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a folder of a point (the default).")
        @OptionGroup var options: ConnectOptions
        @Argument(help: "The VM, as name or cloudService/name.") var vm: String
        @Option(help: "The recovery point id.") var point: String
        @Argument(help: "The path, /<disk>/part<N>/….") var path = "/"
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let disks = try await PointSource.open(vm: vm, point: point, options: options)
                let path = path
                let listing = try await MountRunner.withFiles(disks) { files in try files.list(path) }
                try MountRunner.printListing(listing, json: json)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy a file or a folder out of a point, keeping modes, owners, times and symbolic links.")
        @OptionGroup var options: ConnectOptions
        @Argument(help: "The VM, as name or cloudService/name.") var vm: String
        @Option(help: "The recovery point id.") var point: String
        @Argument(help: "The path, /<disk>/part<N>/….") var path: String
        @Option(help: "Where to: into this folder when it exists, else under this name.") var to: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let disks = try await PointSource.open(vm: vm, point: point, options: options)
                let (path, to) = (path, FileIO.absolutePath(to))
                let report = try await MountRunner.withFiles(disks) { files in try files.copy(path, to: to) }
                try MountRunner.printCopy(report, json: json)
            }
        }
    }
}

/// Serves a point's disks over NBD until Ctrl-C or SIGTERM.
enum ExportRunner {
    static func serve(_ disks: any PointDisks, socket: String) async throws {
        let path = FileIO.absolutePath(socket)
        let server: NBDServer
        do {
            server = try await runOnThread { _ in try NBDServer(disks: disks, socketPath: path) }
        } catch {
            disks.close()
            throw error
        }
        print("point \(disks.pointID) served read-only over NBD at \(path)")
        for disk in disks.readableDisks {
            print("  nbd+unix:///\(disk.name)?socket=\(path)  \(ByteSize.format(disk.size))")
        }
        print("stop with Ctrl-C")
        fflush(nil)
        let stopped = DispatchSemaphore(value: 0)
        let signals = SignalStop { _ in stopped.signal() }
        _ = await runOnThread { _ in stopped.wait() }
        signals.cancel()
        server.stop()
        disks.close()
        if let failure = server.readFailure {
            FileHandle.standardError.write(Data("coffre: some reads failed while served: \(failure)\n".utf8))
        }
    }
}

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Serve a recovery point's disks read-only over NBD on a Unix socket, until Ctrl-C.",
        discussion: """
            One export per disk, named like the disk; any NBD client reads them (QEMU, qemu-img, nbdcopy):
              coffre export web01 --point rp-… --socket /run/coffre/web01.sock
              qemu-img create -f qcow2 -F raw -b 'nbd+unix:///os.img?socket=/run/coffre/web01.sock' overlay.qcow2
            Every block is verified as it is read; writes are refused (put them in an overlay).
            """)
    @OptionGroup var options: ConnectOptions
    @Argument(help: "The VM, as name or cloudService/name.") var vm: String
    @Option(help: "The recovery point id.") var point: String
    @Option(help: "The Unix socket to listen at.") var socket: String

    func run() async throws {
        try await reportingErrors {
            try await ExportRunner.serve(try await PointSource.open(vm: vm, point: point, options: options), socket: socket)
        }
    }
}

extension ImageCommand {
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve a point of a vault read-only over NBD (as `coffre export`, with --vault instead of a VM).",
            discussion: "Example: coffre image export --vault /srv/coffre --point rp-… --socket /tmp/point.sock")
        @OptionGroup var options: VaultOptions
        @Option(help: "The recovery point id.") var point: String
        @Option(help: "The Unix socket to listen at.") var socket: String

        func run() async throws {
            try await reportingErrors {
                try await ExportRunner.serve(try await PointSource.open(vault: options, point: point), socket: socket)
            }
        }
    }

    struct Mount: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mount a point of a vault read-only (as `coffre mount`, with --vault instead of a VM).",
            discussion: "Example: coffre image mount --vault /srv/coffre --point rp-… /mnt/point --partitions")
        @OptionGroup var options: VaultOptions
        @Option(help: "The recovery point id.") var point: String
        @Argument(help: "An empty folder to mount on.") var directory: String
        @Flag(help: "Mount the file systems of the disks' partitions.") var partitions = false
        @Flag(help: "Print the layout as JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let disks = try await PointSource.open(vault: options, point: point)
                try await MountRunner.mountAndWait(disks, at: directory, partitions: partitions, json: json)
            }
        }
    }

    struct Files: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List a folder of a point of a vault, or copy it out with --to (as `coffre files`).",
            discussion: """
                coffre image files --vault /srv/coffre --point rp-… /disk0.img/part1/etc
                coffre image files --vault /srv/coffre --point rp-… /disk0.img/part1/etc/hosts --to /tmp/
                """)
        @OptionGroup var options: VaultOptions
        @Option(help: "The recovery point id.") var point: String
        @Argument(help: "The path, /<disk>/part<N>/….") var path = "/"
        @Option(help: "Copy the path there instead of listing it.") var to: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let disks = try await PointSource.open(vault: options, point: point)
                let path = path
                if let to = to.map(FileIO.absolutePath) {
                    try MountRunner.printCopy(try await MountRunner.withFiles(disks) { try $0.copy(path, to: to) }, json: json)
                } else {
                    try MountRunner.printListing(try await MountRunner.withFiles(disks) { try $0.list(path) }, json: json)
                }
            }
        }
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
