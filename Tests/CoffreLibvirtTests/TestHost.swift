#if Libvirt
import CoffreCore
import Foundation
@testable import CoffreLibvirt

/// The real libvirt host that `scripts/libvirt-harness up` starts, as the tests see it.
///
/// The tests that need it are enabled only when the harness ran (its env file exists) or
/// `COFFRE_LIBVIRT_URI` is set, so `swift test` on a machine without libvirtd skips them.
enum TestHost {
    static let environment = ProcessInfo.processInfo.environment
    static let folder = environment["COFFRE_HV"] ?? "/tmp/coffre-hv"
    static let uri = environment["COFFRE_LIBVIRT_URI"] ?? "qemu:///system"
    /// Running, persistent: vda (64 MiB qcow2) and vdb (64 MiB qcow2, ext4 on /mnt), agent channel.
    static let runningDomain = environment["COFFRE_LIBVIRT_DOMAIN"] ?? "coffre-tiny"
    /// Defined, shut off: vda (32 MiB qcow2) and vdb (16 MiB raw), no agent channel.
    static let stoppedDomain = environment["COFFRE_LIBVIRT_STOPPED_DOMAIN"] ?? "coffre-stopped"
    static let isUp = environment["COFFRE_LIBVIRT_URI"] != nil
        || FileManager.default.fileExists(atPath: folder + "/env")
    /// In CI (`COFFRE_CI`) the live tests run whatever happens: a host that is not up fails
    /// them instead of skipping them.
    static let required = environment["COFFRE_CI"] != nil
    /// Whether the live tests run: the host is up, or CI requires them.
    static let live = isUp || required

    /// The statically linked `coffre-agent` (`scripts/build-agent`), when it was built.
    static let staticAgent: String? = {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let path = environment["COFFRE_STATIC_AGENT"] ?? repository + "/.build-static/release/coffre-agent"
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }()

    static func connect() async throws -> LibvirtConnection {
        try await LibvirtConnection.open(uri)
    }

    static func running() async throws -> LibvirtDomain {
        try await connect().requireDomain(named: runningDomain)
    }
}

/// Reproducible pseudo-random bytes (SplitMix64).
func randomBytes(count: Int, seed: UInt64) -> Data {
    var state = seed
    var data = Data(capacity: count + 8)
    while data.count < count {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        withUnsafeBytes(of: z) { data.append(contentsOf: $0) }
    }
    return data.prefix(count)
}

/// SHA-256 of `data` by the host's `sha256sum`, as hex (CoffreCore has no hashing of its own).
func hostSHA256(_ data: Data) throws -> String {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("coffre-libvirt-\(UUID().uuidString)")
    try data.write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    process.arguments = [file.path]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: output, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
}
#endif
