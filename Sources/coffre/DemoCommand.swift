import ArgumentParser
import CoffreCore
import Foundation

/// `coffre demo`: sample VMs in the local fabric, one for each state a new user should see.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Create sample VMs in the local fabric (every registration case), then show the next steps.",
        discussion: """
            Creates, in <data>/fabric: prod/web01 and test/web01 (same name, two cloud services),
            prod/db01 (three disks), prod/legacy01 (stopped), prod/bigdata01 (too many data disks)
            and prod/kiosk01 (no VM agent). Existing VM folders are left as they are.
            Example:
              coffre demo && coffre discover && coffre vm list
            """)
    @OptionGroup var app: AppOptions

    func run() async throws {
        try await reportingErrors {
            let created = try DemoFabric.populate(dataPath: app.dataPath)
            print(created.isEmpty ? "The sample VMs already exist in \(app.dataPath)/fabric"
                                  : "Created \(created.count) sample VMs in \(app.dataPath)/fabric: \(created.joined(separator: ", "))")
            print("""
                Next:
                  coffre discover
                  coffre vm list --unregistered
                  coffre register prod/web01 db01
                  coffre policy create nightly --daily 22:00 --keep-days 30
                  coffre protect prod/web01 db01 --policy nightly
                  coffre backup db01
                """)
        }
    }
}

/// The sample VMs of `coffre demo` and `coffre serve --demo`: small sparse disks with a mix
/// of what real disks hold (zeros, text, compressible and random data), so that backups show
/// deduplication, compression and skipped holes.
enum DemoFabric {
    struct SampleVM {
        var cloudService: String
        var name: String
        var power = "running"
        var agent: String? = "2.7"
        /// Sizes in MiB, the OS disk first.
        var disks: [Int] = [64]
        var note: String
    }

    static let samples: [SampleVM] = [
        SampleVM(cloudService: "prod", name: "web01", disks: [64, 32], note: "a web server"),
        SampleVM(cloudService: "test", name: "web01", disks: [64], note: "same name as prod/web01, another cloud service"),
        SampleVM(cloudService: "prod", name: "db01", disks: [64, 64, 32], note: "a database with two data disks"),
        SampleVM(cloudService: "prod", name: "legacy01", power: "stopped", note: "stopped: registration says VMNotRunning"),
        SampleVM(cloudService: "prod", name: "bigdata01", disks: [16] + Array(repeating: 4, count: 17),
                 note: "17 data disks: registration says TooManyDataDisks"),
        SampleVM(cloudService: "prod", name: "kiosk01", agent: nil, note: "no VM agent: registration says VMAgentNotFound"),
    ]

    /// Writes the sample VM folders that do not exist yet under `<dataPath>/fabric`.
    /// - Returns: the VMs created, as `cloudService/name`.
    @discardableResult
    static func populate(dataPath: String) throws -> [String] {
        var created: [String] = []
        for (index, sample) in samples.enumerated() {
            let folder = "\(dataPath)/fabric/\(sample.cloudService)/\(sample.name)"
            guard !FileManager.default.fileExists(atPath: folder + "/vm.json") else { continue }
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            var names: [String] = []
            for (number, mebibytes) in sample.disks.enumerated() {
                let name = number == 0 ? "os.img" : "data\(number).img"
                names.append(name)
                try writeDisk(folder + "/" + name, size: mebibytes << 20, seed: UInt64(index * 100 + number))
            }
            var json: [String: Any] = ["name": sample.name, "cloudService": sample.cloudService, "osType": "linux",
                                       "powerState": sample.power, "disks": names, "description": sample.note]
            if let agent = sample.agent { json["agentVersion"] = agent }
            let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: folder + "/vm.json"), options: .atomic)
            created.append("\(sample.cloudService)/\(sample.name)")
        }
        return created
    }

    /// A sparse disk: a text region, a compressible region and a random region, holes between.
    private static func writeDisk(_ path: String, size: Int, seed: UInt64) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path)
        else { throw CoffreError(.ioError, "Cannot create \(path)", workaround: "Check permissions and free space") }
        defer { try? handle.close() }
        try handle.truncate(atOffset: UInt64(size))
        let region = min(1 << 20, size / 4)
        let text = String(repeating: "coffre sample disk \(seed): log line, config entry, package list\n", count: region / 64)
        try handle.seek(toOffset: 0)
        try handle.write(contentsOf: Data(text.utf8.prefix(region)))
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state = state &+ 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let compressible = (0..<region).map { UInt8(($0 / 512) % 7 + 0x41) }
        try handle.seek(toOffset: UInt64(size / 4))
        try handle.write(contentsOf: Data(compressible))
        var random = [UInt8](repeating: 0, count: region)
        for i in stride(from: 0, to: region, by: 8) {
            withUnsafeBytes(of: next()) { bytes in
                for j in 0..<min(8, region - i) { random[i + j] = bytes[j] }
            }
        }
        try handle.seek(toOffset: UInt64(size / 2))
        try handle.write(contentsOf: Data(random))
    }
}
