// Shared helpers for the end-to-end tests of the `coffre` executable.
// These tests run the real binary as a subprocess; see docs/cli.md for the contract.

import CoffreS3
import CoffreTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Errors

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Locating the binary

enum CoffreBinary {
    /// The `coffre` executable: `COFFRE_BIN`, else next to the running test bundle,
    /// else `.build*/debug/coffre` under the package root. Throws (the test fails) when absent.
    static func locate(filePath: String = #filePath) throws -> URL {
        let fm = FileManager.default
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["COFFRE_BIN"], !env.isEmpty {
            // An explicit setting must be honoured (or fail), never silently replaced.
            guard fm.isExecutableFile(atPath: env) else {
                throw HarnessError("COFFRE_BIN=\(env) is not an executable file")
            }
            return URL(fileURLWithPath: env)
        }
        if let arg0 = CommandLine.arguments.first {
            let url = URL(fileURLWithPath: arg0, relativeTo: URL(fileURLWithPath: fm.currentDirectoryPath))
                .standardizedFileURL.resolvingSymlinksInPath()
            candidates.append(url.deletingLastPathComponent().appendingPathComponent("coffre").path)
        }
        let bundle = Bundle.main.bundleURL.standardizedFileURL
        candidates.append(bundle.appendingPathComponent("coffre").path)
        candidates.append(bundle.deletingLastPathComponent().appendingPathComponent("coffre").path)
        // Package root: Tests/CoffreCLITests/CLIHarness.swift -> three levels up.
        let root = URL(fileURLWithPath: filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        for scratch in [".build", ".build-cli"] {
            candidates.append(root.appendingPathComponent("\(scratch)/debug/coffre").path)
        }
        for candidate in candidates {
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: candidate, isDirectory: &isDir), !isDir.boolValue,
               fm.isExecutableFile(atPath: candidate)
            {
                return URL(fileURLWithPath: candidate)
            }
        }
        throw HarnessError(
            "the `coffre` executable was not found (set COFFRE_BIN or build it with "
                + "`swift build`); looked at: \(candidates.joined(separator: ", "))")
    }
}

// MARK: - Running processes

final class DataBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storage = Data()
    func set(_ data: Data) { lock.lock(); storage = data; lock.unlock() }
    var data: Data { lock.lock(); defer { lock.unlock() }; return storage }
}

struct RunResult: Sendable, CustomStringConvertible {
    var arguments: [String]
    var status: Int32
    /// The process was ended by a signal (our SIGKILL, or a crash).
    var signaled: Bool
    var timedOut: Bool
    var stdout: String
    var stderr: String
    var duration: Double

    var succeeded: Bool { !signaled && !timedOut && status == 0 }
    var stdoutLines: [String] {
        stdout.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }
    var stderrLines: [String] {
        stderr.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }
    var description: String {
        "`coffre \(arguments.joined(separator: " "))` -> "
            + (signaled ? "signal \(status)" : "exit \(status)") + (timedOut ? " (TIMED OUT)" : "")
            + "\n  stdout: \(stdout.prefix(2000))\n  stderr: \(stderr.prefix(2000))"
    }
}

func runProcess(
    _ executable: URL, _ arguments: [String], environment extra: [String: String] = [:],
    timeout: Double = 120, killAfter: Double? = nil
) throws -> RunResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env.removeValue(forKey: "COFFRE_ENCRYPTION_KEY_FILE")
    for (k, v) in CLIStore.environment { env[k] = v }
    for (k, v) in extra { env[k] = v }
    process.environment = env
    let outPipe = Pipe()
    let errPipe = Pipe()
    process.standardOutput = outPipe
    process.standardError = errPipe
    process.standardInput = FileHandle.nullDevice
    let outBox = DataBox()
    let errBox = DataBox()
    let done = DispatchSemaphore(value: 0)
    let outHandle = outPipe.fileHandleForReading
    let errHandle = errPipe.fileHandleForReading

    let start = Date()
    try process.run()
    let pid = process.processIdentifier
    // Each reader closes its end at EOF: left to deinit, the ends leaked with the threads'
    // blocks (about ten a second in the kill -9 test), and past ~1,350 open descriptors
    // Foundation's Process.run over-reads /proc/self/fd and crashes (swift-corelibs-foundation
    // PR 5472, not in Swift 6.3).
    Thread.detachNewThread {
        outBox.set(outHandle.readDataToEndOfFile())
        try? outHandle.close()
        done.signal()
    }
    Thread.detachNewThread {
        errBox.set(errHandle.readDataToEndOfFile())
        try? errHandle.close()
        done.signal()
    }
    if let killAfter {
        if killAfter > 0 { usleep(useconds_t(killAfter * 1_000_000)) }
        kill(pid, SIGKILL)
    }
    var timedOut = false
    let deadline = start.addingTimeInterval(timeout)
    var exit = ChildExit.peek(pid)
    while exit == nil {
        if Date() > deadline, !timedOut {
            kill(pid, SIGKILL)
            timedOut = true
        }
        usleep(2_000)
        exit = ChildExit.peek(pid)
    }
    let duration = Date().timeIntervalSince(start)
    // The readers end at EOF; do not hang forever if a pipe end leaked somewhere.
    _ = done.wait(timeout: .now() + 10)
    _ = done.wait(timeout: .now() + 10)
    if exit!.reaped {
        // Foundation reaped it first: then it knows the status (isRunning turns false at once).
        while process.isRunning { usleep(1_000) }
        exit = ChildExit(status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal)
    }
    return RunResult(
        arguments: arguments,
        status: exit!.status,
        signaled: exit!.signaled,
        timedOut: timedOut,
        stdout: String(decoding: outBox.data, as: UTF8.self),
        stderr: String(decoding: errBox.data, as: UTF8.self),
        duration: duration)
}

/// How a child process ended, read without reaping it.
///
/// Foundation's `Process` learns that a child ended when a socket it passed to the child
/// closes; a process spawned at the same moment by another test can inherit that socket and
/// keep it open, so `isRunning` stays true long after the child is gone
/// (swift-corelibs-foundation issue 4795). `waitid(…, WNOWAIT)` asks the kernel instead and
/// leaves the child for Foundation to reap.
struct ChildExit {
    var status: Int32
    var signaled: Bool
    /// Already reaped, by Foundation: ask it.
    var reaped = false

    /// Nil while `pid` runs.
    static func peek(_ pid: Int32) -> ChildExit? {
        var info = siginfo_t()
        guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 else {
            // Already reaped (by Foundation): it ended, and Foundation knows how.
            return errno == ECHILD ? ChildExit(status: -1, signaled: false, reaped: true) : nil
        }
        guard info._sifields._sigchld.si_pid == pid else { return nil }
        let code = info.si_code
        return ChildExit(status: info._sifields._sigchld.si_status,
                         signaled: code == Int32(CLD_KILLED) || code == Int32(CLD_DUMPED))
    }
}

/// Where the CLI tests' vaults live: folders, or with `COFFRE_TEST_STORE=s3` prefixes of the
/// test bucket on the gateway of `scripts/s3-harness` (scripts/test runs the suites that
/// name vaults through `CLIStore.name` a second time so).
enum CLIStore {
    static let s3 = ProcessInfo.processInfo.environment["COFFRE_TEST_STORE"] == "s3"

    /// `--vault` for the vault a test keeps at `folder`: the folder, or an S3 prefix unique to it.
    static func name(_ folder: URL) -> String {
        guard s3 else { return folder.path }
        _ = bucket
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in folder.path.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "s3://\(S3TestGateway.bucket)/cli-\(String(hash, radix: 16))"
    }

    /// The endpoint and credentials every `coffre` run gets in S3 mode.
    static var environment: [String: String] {
        s3 ? gatewayEnvironment : [:]
    }

    /// The endpoint and credentials of the test gateway, for a test that always uses it.
    static var gatewayEnvironment: [String: String] {
        ["AWS_ENDPOINT_URL": S3TestGateway.endpoint, "AWS_ACCESS_KEY_ID": S3TestGateway.accessKey,
         "AWS_SECRET_ACCESS_KEY": S3TestGateway.secretKey]
    }

    private static let bucket: Void? = try? S3ChunkStore.createBucket(
        S3Location(endpoint: S3TestGateway.endpoint, bucket: S3TestGateway.bucket),
        credentials: S3Credentials(accessKeyID: S3TestGateway.accessKey, secretAccessKey: S3TestGateway.secretKey))
}

/// The `coffre` executable plus convenience wrappers.
struct Coffre: Sendable {
    let binary: URL

    init() throws { binary = try CoffreBinary.locate() }

    func run(_ args: [String], env: [String: String] = [:], timeout: Double = 120) throws -> RunResult {
        try runProcess(binary, args, environment: env, timeout: timeout)
    }

    /// Runs and requires exit status 0 (throws with the full transcript otherwise).
    @discardableResult
    func ok(_ args: [String], env: [String: String] = [:], timeout: Double = 120) throws -> RunResult {
        let r = try run(args, env: env, timeout: timeout)
        guard r.succeeded else { throw HarnessError("command failed: \(r)") }
        return r
    }

    /// Runs and decodes stdout as JSON (exit status must be 0).
    func json<T: Decodable>(_ type: T.Type, _ args: [String], env: [String: String] = [:]) throws -> T {
        let r = try ok(args, env: env)
        return try decodeJSON(type, r.stdout, context: r)
    }

    // Common commands.

    @discardableResult
    func createVault(_ vault: URL, blockSize: String? = nil, key: URL? = nil) throws -> CreateReport {
        var args = ["vault", "create", CLIStore.name(vault), "--json"]
        if let blockSize { args += ["--block-size", blockSize] }
        if let key { args += ["--encryption-key", key.path] }
        return try json(CreateReport.self, args)
    }

    /// `image backup` (plain output); returns the printed point id.
    func backup(_ vault: URL, item: String, disks: [URL], env: [String: String] = [:]) throws -> String {
        let r = try ok(["image", "backup", "--vault", CLIStore.name(vault), "--item", item, "--no-progress"] + disks.map(\.path), env: env)
        let lines = r.stdoutLines
        guard lines.count == 1, let id = lines.first?.trimmingCharacters(in: .whitespaces), !id.isEmpty else {
            throw HarnessError("backup must print exactly one line (the point id): \(r)")
        }
        return id
    }

    func backupJSON(_ vault: URL, item: String, disks: [URL]) throws -> BackupReport {
        try json(BackupReport.self, ["image", "backup", "--vault", CLIStore.name(vault), "--item", item, "--no-progress", "--json"] + disks.map(\.path))
    }

    func points(_ vault: URL, item: String, env: [String: String] = [:]) throws -> [PointInfo] {
        try json([PointInfo].self, ["image", "points", "--vault", CLIStore.name(vault), "--item", item, "--json"], env: env)
    }

    func restore(_ vault: URL, point: String, to dir: URL, env: [String: String] = [:]) throws {
        try ok(["image", "restore", "--vault", CLIStore.name(vault), "--point", point, "--to", dir.path, "--no-progress"], env: env)
    }

    func expire(_ vault: URL, point: String, noGC: Bool = false) throws {
        try ok(["image", "expire", "--vault", CLIStore.name(vault), "--point", point] + (noGC ? ["--no-gc"] : []))
    }

    /// `vault verify --json`; returns the result too so exit codes can be checked.
    func verify(_ vault: URL) throws -> (RunResult, VerifyReport?) {
        let r = try run(["vault", "verify", "--vault", CLIStore.name(vault), "--json"])
        let report = try? decodeJSON(VerifyReport.self, r.stdout, context: r)
        return (r, report)
    }

    func stats(_ vault: URL) throws -> StatsReport {
        try json(StatsReport.self, ["vault", "stats", "--vault", CLIStore.name(vault), "--json"])
    }
}

// MARK: - JSON shapes (docs/cli.md)

struct CreateReport: Decodable, Sendable { var path: String; var blockSize: Int; var encrypted: Bool }
struct BackupReport: Decodable, Sendable { var id: String; var blocksAdded: Int; var bytesWritten: Int; var bytesRead: Int }
struct DiskInfo: Decodable, Sendable { var name: String; var size: Int }
struct PointInfo: Decodable, Sendable {
    var id: String
    var item: String
    var disks: [DiskInfo]
    var blocksAdded: Int
    var blocksOnlyHere: Int
    var bytesFreedIfExpired: Int
}
struct GCReport: Decodable, Sendable { var removedChunks: Int; var removedBytes: Int; var keptChunks: Int }
struct VerifyReport: Decodable, Sendable {
    var clean: Bool
    var checkedChunks: Int
    var damagedChunks: [String]
    var missingChunks: [String]
    var brokenPoints: [String]
}
struct StatsReport: Decodable, Sendable {
    var storedChunks: Int
    var storedBytes: Int
    var logicalBytes: Int
    var points: Int
    var indexChunks: Int
    var indexBytes: Int
}

func decodeJSON<T: Decodable>(_ type: T.Type, _ text: String, context: RunResult? = nil) throws -> T {
    do {
        return try JSONDecoder().decode(type, from: Data(text.utf8))
    } catch {
        throw HarnessError("cannot decode \(T.self) from output (\(error)): \(context.map { "\($0)" } ?? text)")
    }
}

/// Top-level JSON value as Foundation objects (to check for keys not modelled above).
func jsonObject(_ text: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
}

// MARK: - Error-line checks

/// Contract: a failed command exits non-zero with exactly one line on stderr,
/// `coffre: error [Code]: message. Workaround: …`.
func expectOneLineError(_ r: RunResult, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(!r.signaled && !r.timedOut, "\(what): process crashed or hung: \(r)", sourceLocation: sourceLocation)
    #expect(r.status != 0, "\(what): expected a non-zero exit: \(r)", sourceLocation: sourceLocation)
    let lines = r.stderrLines
    #expect(lines.count == 1, "\(what): expected exactly one line on stderr, got \(lines.count): \(r)", sourceLocation: sourceLocation)
    if let line = lines.first {
        #expect(line.hasPrefix("coffre: error ["), "\(what): stderr line not in the documented format: \(line)", sourceLocation: sourceLocation)
        #expect(line.contains("Workaround"), "\(what): stderr line has no workaround: \(line)", sourceLocation: sourceLocation)
    }
}

// MARK: - Temporary directories

func withTempDir<T>(_ name: String = #function, _ body: (URL) throws -> T) throws -> T {
    let safe = name.filter { $0.isLetter || $0.isNumber }
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("coffre-cli-\(safe)-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    return try body(dir)
}

/// `withTempDir` for async tests: a test that waits long must wait with `Task.sleep`, never
/// holding one of the (two, here) cooperative threads the in-process tests need.
func withTempDir<T>(_ name: String = #function, _ body: (URL) async throws -> T) async throws -> T {
    let safe = name.filter { $0.isLetter || $0.isNumber }
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("coffre-cli-\(safe)-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    return try await body(dir)
}

/// Waits `seconds` without holding a cooperative thread.
func pause(_ seconds: Double) async throws {
    if seconds > 0 { try await Task.sleep(for: .milliseconds(Int(seconds * 1000))) }
}

func makeDir(_ url: URL) throws -> URL {
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Names (including hidden files) in a directory.
func directoryEntries(_ dir: URL) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
}

// MARK: - Deterministic PRNG

struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &self) }
    mutating func double(_ range: ClosedRange<Double>) -> Double { Double.random(in: range, using: &self) }

    mutating func bytes(_ count: Int) -> Data {
        var data = Data(count: count)
        data.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) in
            guard let base = raw.baseAddress else { return }
            var i = 0
            while i + 8 <= count {
                var v = next()
                memcpy(base + i, &v, 8)
                i += 8
            }
            if i < count {
                var v = next()
                memcpy(base + i, &v, count - i)
            }
        }
        return data
    }
}

// MARK: - Disk images (raw files, possibly sparse)

/// A raw disk file plus an in-memory copy of its exact content.
struct Disk {
    let url: URL
    private(set) var content: Data

    var name: String { url.lastPathComponent }
    var size: Int { content.count }

    /// Creates a sparse file of `size` bytes (all holes).
    init(create url: URL, size: Int) throws {
        self.url = url
        let fd = open(url.path, O_CREAT | O_TRUNC | O_WRONLY, 0o644)
        guard fd >= 0 else { throw HarnessError("open \(url.path): errno \(errno)") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw HarnessError("ftruncate: errno \(errno)") }
        content = Data(count: size)
    }

    /// Writes `data` at `offset` in the file (in place; holes elsewhere stay holes).
    mutating func write(_ data: Data, at offset: Int) throws {
        precondition(offset >= 0 && offset + data.count <= content.count, "write beyond disk end")
        let fd = open(url.path, O_WRONLY)
        guard fd >= 0 else { throw HarnessError("open \(url.path): errno \(errno)") }
        defer { close(fd) }
        let written = data.withUnsafeBytes { pwrite(fd, $0.baseAddress, data.count, off_t(offset)) }
        guard written == data.count else { throw HarnessError("pwrite: errno \(errno)") }
        content.replaceSubrange(offset..<(offset + data.count), with: data)
    }
}

/// Allocated 512-byte blocks of a file (st_blocks).
func allocatedBlocks(_ url: URL) throws -> Int {
    var st = stat()
    guard stat(url.path, &st) == 0 else { throw HarnessError("stat \(url.path): errno \(errno)") }
    return Int(st.st_blocks)
}

func fileMode(_ url: URL) throws -> Int {
    var st = stat()
    guard stat(url.path, &st) == 0 else { throw HarnessError("stat \(url.path): errno \(errno)") }
    return Int(st.st_mode) & 0o7777
}

func readFile(_ url: URL) throws -> Data { try Data(contentsOf: url) }

/// Describes the first difference between two byte strings (for failure messages).
func firstDifference(_ a: Data, _ b: Data) -> String {
    if a.count != b.count { return "sizes differ: \(a.count) vs \(b.count)" }
    let n = a.withUnsafeBytes { (pa: UnsafeRawBufferPointer) -> Int in
        b.withUnsafeBytes { (pb: UnsafeRawBufferPointer) -> Int in
            for i in 0..<pa.count where pa.load(fromByteOffset: i, as: UInt8.self) != pb.load(fromByteOffset: i, as: UInt8.self) {
                return i
            }
            return -1
        }
    }
    return n < 0 ? "identical" : "first difference at byte \(n)"
}

/// Restores `point` into a fresh directory under `parent` and checks every disk byte for byte.
func expectRestoreMatches(
    _ coffre: Coffre, vault: URL, point: String, disks: [(name: String, content: Data)], into dir: URL,
    env: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation
) throws {
    _ = try makeDir(dir)
    try coffre.restore(vault, point: point, to: dir, env: env)
    #expect(directoryEntries(dir) == disks.map(\.name).sorted(),
            "restore of \(point) produced \(directoryEntries(dir))", sourceLocation: sourceLocation)
    for disk in disks {
        let restored = try readFile(dir.appendingPathComponent(disk.name))
        #expect(restored == disk.content,
                "restored \(disk.name) of point \(point) differs: \(firstDifference(restored, disk.content))",
                sourceLocation: sourceLocation)
    }
}

// MARK: - Vault inspection

/// Every entry under `root` with type, size and mtime (ns), for before/after comparisons.
func treeListing(_ root: URL) -> [String] {
    var out: [String] = []
    let fm = FileManager.default
    guard let e = fm.enumerator(atPath: root.path) else { return ["<missing>"] }
    while let rel = e.nextObject() as? String {
        var st = stat()
        let path = root.appendingPathComponent(rel).path
        guard lstat(path, &st) == 0 else { out.append("\(rel) <vanished>"); continue }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            out.append("\(rel)/")
        } else {
            out.append("\(rel) size=\(st.st_size) mtime=\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)")
        }
    }
    return out.sorted()
}

/// Regular files under `dir` (recursively), as full URLs.
func regularFiles(under dir: URL) -> [URL] {
    var out: [URL] = []
    guard let e = FileManager.default.enumerator(atPath: dir.path) else { return [] }
    while let rel = e.nextObject() as? String {
        let url = dir.appendingPathComponent(rel)
        var st = stat()
        if lstat(url.path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { out.append(url) }
    }
    return out.sorted { $0.path < $1.path }
}

/// Does `haystack` contain `needle`? (memchr for the first byte, then memcmp)
func contains(_ haystack: Data, _ needle: Data) -> Bool {
    haystack.withUnsafeBytes { (h: UnsafeRawBufferPointer) -> Bool in
        needle.withUnsafeBytes { (n: UnsafeRawBufferPointer) -> Bool in
            guard let hb = h.baseAddress, let nb = n.baseAddress, n.count > 0, n.count <= h.count else {
                return n.count == 0
            }
            let first = Int32(n.load(as: UInt8.self))
            let last = h.count - n.count  // last possible start
            var i = 0
            while i <= last {
                guard let p = memchr(hb + i, first, last - i + 1) else { return false }
                let at = hb.distance(to: UnsafeRawPointer(p))
                if memcmp(hb + at, nb, n.count) == 0 { return true }
                i = at + 1
            }
            return false
        }
    }
}

// MARK: - Block arithmetic

/// Distinct non-zero blocks (by content) of the given disk contents, split at `blockSize`;
/// a final partial block counts by its actual bytes.
func distinctNonZeroBlocks(_ contents: [Data], blockSize: Int) -> Set<Data> {
    var set = Set<Data>()
    for content in contents {
        var offset = 0
        while offset < content.count {
            let end = min(offset + blockSize, content.count)
            let block = content.subdata(in: offset..<end)
            if !isAllZero(block) { set.insert(block) }
            offset = end
        }
    }
    return set
}

func isAllZero(_ data: Data) -> Bool {
    data.withUnsafeBytes { raw in
        guard let base = raw.baseAddress else { return true }
        let p = base.assumingMemoryBound(to: UInt8.self)
        if raw.count == 0 { return true }
        if p[0] != 0 { return false }
        return memcmp(base, base + 1, raw.count - 1) == 0
    }
}

let KiB = 1024
let MiB = 1024 * 1024
