import CoffreCore
import CoffreNBD
import CoffreSystem
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The QEMU tools the tests drive, found on PATH.
enum QemuTools {
    static func path(_ tool: String) -> String? {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for directory in directories {
            let candidate = "\(directory)/\(tool)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    static let available = ["qemu-nbd", "qemu-img", "qemu-io"].allSatisfy { path($0) != nil }

    /// In CI (`COFFRE_CI` set) a missing qemu-nbd fails the tests; on a developer machine
    /// without it they are disabled, and the trait's comment says how to get it.
    static let enabled = available || ProcessInfo.processInfo.environment["COFFRE_CI"] != nil

    static let installHint = "qemu-nbd, qemu-img and qemu-io are needed: apt-get install -y qemu-utils"

    /// Runs a tool to completion, its output to a log file (a forked qemu-nbd keeps pipes open).
    ///
    /// posix_spawn with an empty signal mask and default handlers: threads of the test process
    /// (Dispatch workers) block SIGTERM, and a qemu-nbd inheriting that mask ignores SIGTERM.
    @discardableResult
    static func run(_ tool: String, _ arguments: [String], in directory: TestDirectory) throws -> String {
        guard let executable = path(tool) else { throw TestFailure(installHint) }
        let (status, text) = try HostCommand.run(
            executable, arguments, log: directory.path("\(tool)-\(UUID().uuidString.prefix(8)).log"),
            missing: CoffreError(CoffreError.Code(rawValue: "ToolMissing"), installHint))
        guard status == 0 else {
            throw TestFailure("\(tool) \(arguments.joined(separator: " ")) failed (status \(status)): \(text)")
        }
        return text
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A temporary directory removed at the end of the test.
final class TestDirectory {
    let root: String

    init() throws {
        var template = Array("/tmp/coffre-nbd-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TestFailure("mkdtemp failed: \(errno)")
        }
        root = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func path(_ name: String) -> String { "\(root)/\(name)" }
}

/// A qemu-nbd server for one test, stopped by pid file when the scope ends (even on failure).
final class QemuNBDServer {
    let endpoint: NBDEndpoint
    let export: String
    private let pidFile: String
    private let directory: TestDirectory

    private init(endpoint: NBDEndpoint, export: String, pidFile: String, directory: TestDirectory) {
        self.endpoint = endpoint
        self.export = export
        self.pidFile = pidFile
        self.directory = directory
    }

    /// Starts `qemu-nbd --fork` (returns once the server listens) on a Unix socket in
    /// `directory`, or on 127.0.0.1 when `tcp` is set, exporting `image` read-only as `export`.
    static func start(
        image: String, format: String, export: String = "disk", bitmap: String? = nil,
        shared: Int = 8, tcp: Bool = false, socketPath: String? = nil, in directory: TestDirectory
    ) throws -> QemuNBDServer {
        guard QemuTools.available else { throw TestFailure(QemuTools.installHint) }
        let pidFile = directory.path("qemu-nbd-\(UUID().uuidString.prefix(8)).pid")
        var arguments = ["--fork", "--persistent", "--read-only", "--format=\(format)", "--pid-file=\(pidFile)",
                         "--shared=\(shared)", "--export-name=\(export)"]
        if let bitmap { arguments += ["--bitmap=\(bitmap)"] }
        var lastError: (any Error)?
        for _ in 0..<5 {  // a TCP port picked free may be taken before qemu-nbd binds it
            let endpoint: NBDEndpoint
            var listen: [String]
            if tcp {
                let port = try freeTCPPort()
                endpoint = .tcp(host: "127.0.0.1", port: port)
                listen = ["--bind=127.0.0.1", "--port=\(port)"]
            } else {
                let socket = socketPath ?? directory.path("nbd-\(UUID().uuidString.prefix(8)).sock")
                endpoint = .unix(path: socket)
                listen = ["--socket=\(socket)"]
            }
            do {
                try QemuTools.run("qemu-nbd", arguments + listen + [image], in: directory)
                return QemuNBDServer(endpoint: endpoint, export: export, pidFile: pidFile, directory: directory)
            } catch {
                lastError = error
                if !tcp { break }
            }
        }
        throw lastError!
    }

    /// Kills the server by its pid file and waits for it to exit.
    func stop() {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1
        else { return }
        kill(pid, SIGTERM)
        for _ in 0..<200 where Self.isRunning(pid) { usleep(5_000) }
        if Self.isRunning(pid) { kill(pid, SIGKILL) }
        unlink(pidFile)
    }

    /// Alive and not a zombie (the daemon's parent is init, which may be slow to reap it).
    private static func isRunning(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return true }
        return !stat[close...].hasPrefix(") Z")
    }

    deinit { stop() }
}

/// Runs `body` with a qemu-nbd server that is stopped afterwards, whatever happens.
func withQemuNBD<T>(
    image: String, format: String, export: String = "disk", bitmap: String? = nil, shared: Int = 8,
    tcp: Bool = false, in directory: TestDirectory, _ body: (QemuNBDServer) throws -> T
) throws -> T {
    let server = try QemuNBDServer.start(image: image, format: format, export: export, bitmap: bitmap,
                                         shared: shared, tcp: tcp, in: directory)
    defer { server.stop() }
    return try body(server)
}

/// A TCP port that was free a moment ago.
func freeTCPPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw TestFailure("bind: \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Deterministic bytes (xorshift), so a failing comparison is reproducible.
struct SeededBytes {
    private var state: UInt64

    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }

    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var result = [UInt8]()
        result.reserveCapacity(count + 8)
        while result.count < count { withUnsafeBytes(of: next()) { result.append(contentsOf: $0) } }
        return Array(result.prefix(count))
    }
}

/// A sparse raw image with `data` written at the given offsets; returns the whole expected content.
func makeRawImage(at path: String, size: Int, data: [(offset: Int, bytes: [UInt8])]) throws -> [UInt8] {
    let fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0o644)
    guard fd >= 0 else { throw TestFailure("open \(path): \(errno)") }
    defer { close(fd) }
    guard ftruncate(fd, off_t(size)) == 0 else { throw TestFailure("ftruncate: \(errno)") }
    var expected = [UInt8](repeating: 0, count: size)
    for (offset, bytes) in data {
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
        guard written == bytes.count else { throw TestFailure("pwrite: \(errno)") }
        expected.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
    }
    return expected
}

/// Reads `count` bytes at `offset` from a connection.
func readBytes(_ connection: NBDConnection, at offset: Int64, count: Int) throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0xA5, count: count)
    try bytes.withUnsafeMutableBytes { try connection.read(into: $0, at: offset) }
    return bytes
}

/// Reads `count` bytes at `offset` from a device.
func readBytes(_ device: NBDDevice, at offset: Int64, count: Int) throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0xA5, count: count)
    try bytes.withUnsafeMutableBytes { try device.read(into: $0, at: offset) }
    return bytes
}

/// The first offset where two byte arrays differ, for readable failures.
func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int? {
    if a.count != b.count { return min(a.count, b.count) }
    let equal = a.withUnsafeBytes { x in b.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 } }
    if equal { return nil }
    return a.indices.first { a[$0] != b[$0] }
}
