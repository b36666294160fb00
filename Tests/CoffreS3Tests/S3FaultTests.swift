import CoffreCore
@testable import CoffreS3
import CoffreStorage
import CoffreSystem
import CoffreTesting
import Foundation
import Testing

/// The vault on S3 through `scripts/s3-fault-proxy.py` (random 500 / 503 SlowDown, connections
/// reset before and after the server acted, truncated and slow answers), and through a
/// gateway stopped in the middle of a backup: every operation either succeeds or fails with a
/// CoffreError, nothing is half-visible, `verify` stays clean and every committed point
/// restores byte-exact. Checks read the vault straight from the gateway, without faults.
@Suite(.enabled(if: S3TestGateway.live, "needs scripts/s3-harness up"), .serialized)
struct S3FaultTests {
    static let block = 16 << 10
    static let blocks = 96

    /// A running fault proxy in front of `upstream`, stopped when the value goes.
    final class FaultProxy {
        let process = Process()
        let port: Int
        let log: String

        init(upstream: String, seed: Int, rate: Double, faults: String? = nil) throws {
            let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().path
            let portFile = NSTemporaryDirectory() + "coffre-proxy-\(UUID().uuidString)"
            log = portFile + ".log"
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = [repository + "/scripts/s3-fault-proxy.py", "--upstream", upstream,
                                 "--port-file", portFile, "--seed", "\(seed)", "--rate", "\(rate)", "--log", log]
                + (faults.map { ["--faults", $0] } ?? [])
            try process.run()
            var found: Int?
            for _ in 0..<200 where found == nil {
                found = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0) }
                if found == nil { usleep(25_000) }
            }
            try? FileManager.default.removeItem(atPath: portFile)
            port = try #require(found, "the proxy did not start")
        }

        var endpoint: String { "http://127.0.0.1:\(port)" }

        /// Outcomes by kind (`200`, `fault-503`, …) from the proxy's log.
        func outcomes() -> [String: Int] {
            var counts: [String: Int] = [:]
            for line in ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n") {
                let words = line.split(separator: " ")
                if words.count > 2 { counts[String(words[2]), default: 0] += 1 }
            }
            return counts
        }

        deinit {
            // SIGKILL: a test process's children may inherit a blocked SIGTERM.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            try? FileManager.default.removeItem(atPath: log)
        }
    }

    /// The vault as a fresh process sees it, straight from the gateway.
    static func direct(_ prefix: String, cache: String) throws -> Vault {
        try Vault.open(S3ChunkStore.open(TestS3.location(prefix: prefix), credentials: TestS3.credentials),
                       cacheDirectory: cache)
    }

    static func restored(_ vault: Vault, _ id: String, in folder: String) async throws -> [UInt8] {
        let target = folder + "/r-\(UUID().uuidString)"
        let paths = try await vault.restore(point: id, to: target)
        defer { try? FileManager.default.removeItem(atPath: target) }
        return Array(try Data(contentsOf: URL(fileURLWithPath: paths[0])))
    }

    /// Runs `scripts/s3-harness` (`stop-gateway b`, `start-gateway b`). Not with Foundation's
    /// `Process`, which does not reap a script whose radosgw daemonized (HostCommand's note).
    static func harness(_ arguments: [String]) throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let script = repository + "/scripts/s3-harness"
        let (status, output) = try HostCommand.run(
            script, arguments, log: NSTemporaryDirectory() + "coffre-s3-harness-\(UUID().uuidString).log",
            missing: CoffreError(.internalError, "\(script) is missing"))
        if status != 0 { throw CoffreError(.internalError, "s3-harness \(arguments) failed: \(output)") }
    }

    /// Seeds, and the share of requests that meet a fault.
    @Test("backups, expiries and collections through injected faults", arguments: [(11, 0.12), (12, 0.2), (13, 0.3)])
    func faults(seed: Int, rate: Double) async throws {
        _ = TestS3.sharedBucket
        let folder = NSTemporaryDirectory() + "coffre-faults-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let prefix = S3TestGateway.newPrefix("faults")
        let clean = try S3ChunkStore.open(TestS3.location(prefix: prefix), credentials: TestS3.credentials)
        _ = try Vault.create(in: clean, cacheDirectory: folder, blockSize: Self.block)
        defer { if let keys = try? clean.list(prefix: "").map(\.key) { try? clean.delete(keys) } }

        let proxy = try FaultProxy(upstream: S3TestGateway.endpoint, seed: seed, rate: rate)
        // Few tries, so that some operations do fail and the failure path is exercised too.
        let retry = S3RetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.1, maxTotal: 10)
        let faulty = try S3ChunkStore(TestS3.location(endpoint: proxy.endpoint).with(prefix: prefix),
                                      credentials: TestS3.credentials, retry: retry, requestTimeout: 5)
        var vault: Vault?
        func faultyVault() -> Vault? {
            if vault == nil { vault = try? Vault.open(faulty, cacheDirectory: folder) }
            return vault
        }

        var generator = SeededGenerator(seed: UInt64(seed))
        var disk = generator.bytes(Self.blocks * Self.block)
        var committed: [String: [UInt8]] = [:]
        var succeeded = 0
        var failed: [String] = []
        for step in 0..<14 {
            let operation = step < 3 ? 0 : Int.random(in: 0..<4, using: &generator)
            let before = try Set(Self.direct(prefix, cache: folder).points().map(\.id))
            var attempted: [UInt8]?
            do {
                guard let vault = faultyVault() else { throw CoffreError(.s3RequestFailed, "the vault did not open") }
                switch operation {
                case 0, 1:
                    for _ in 0..<Int.random(in: 1...12, using: &generator) {
                        let at = Int.random(in: 0..<Self.blocks, using: &generator) * Self.block
                        disk.replaceSubrange(at..<(at + Self.block), with: generator.bytes(Self.block))
                    }
                    attempted = disk
                    let point = try await vault.backup(item: "vm", disks: [MemoryBlockDevice(name: "d", bytes: disk)])
                    committed[point.id] = disk
                case 2 where committed.count > 1:
                    let victim = committed.keys.sorted()[Int.random(in: 0..<(committed.count - 1), using: &generator)]
                    try vault.expire(victim)
                    committed[victim] = nil
                default:
                    _ = try vault.collectGarbage(unusedLimit: Bool.random(using: &generator) ? 0 : Vault.maxUnusedShare)
                }
                succeeded += 1
            } catch let error as CoffreError {
                failed.append("step \(step): \(error.code)")
                vault = nil   // as a new process would, after a failed command
            } catch {
                Issue.record("step \(step): not a CoffreError: \(error)")
                vault = nil
            }
            // What a fresh process sees: the points known, at most the one attempted (whole), clean.
            let check = try Self.direct(prefix, cache: folder)
            let now = Set(try check.points().map(\.id))
            for id in now.subtracting(committed.keys) {
                // A backup whose answer was lost after its point was stored: whole, or not there.
                #expect(!before.contains(id) || operation == 2, "step \(step): \(id) reappeared")
                if let attempted, !before.contains(id) {
                    #expect(try await Self.restored(check, id, in: folder) == attempted, "step \(step): \(id)")
                    committed[id] = attempted
                } else if operation == 2 {
                    committed[id] = nil   // an expiry that failed after its manifest was gone
                }
            }
            let afterAdoption = Set(try check.points().map(\.id))
            #expect(afterAdoption.isSubset(of: Set(committed.keys)) || operation == 2,
                    "step \(step): points \(afterAdoption.sorted()) vs committed \(committed.keys.sorted())")
            // An expiry that failed may or may not have removed its point.
            for id in Set(committed.keys).subtracting(afterAdoption) { committed[id] = nil }
            let report = try check.verify()
            #expect(report.clean, "step \(step): verify \(report)")
        }
        let final = try Self.direct(prefix, cache: folder)
        #expect(Set(try final.points().map(\.id)) == Set(committed.keys))
        for (id, bytes) in committed { #expect(try await Self.restored(final, id, in: folder) == bytes, "\(id)") }
        let outcomes = proxy.outcomes()
        let injected = outcomes.filter { $0.key.hasPrefix("fault-") || $0.key.hasPrefix("slow-") }.values.reduce(0, +)
        print("S3 faults seed \(seed), rate \(rate): \(succeeded) operations succeeded, \(failed.count) failed \(failed); "
              + "\(outcomes.values.reduce(0, +)) requests, \(injected) faults \(outcomes.sorted { $0.key < $1.key })")
        #expect(injected > 10, "the proxy injected too few faults to mean anything: \(outcomes)")
        #expect(succeeded >= 4, "too few operations got through: \(failed)")
        #expect(committed.count >= 1)
    }

    @Test("the gateway stopped in the middle of a backup: the backup fails cleanly, the next one works")
    func gatewayOutage() async throws {
        let endpoint = try #require(S3TestGateway.secondEndpoint, "the harness's second gateway")
        _ = TestS3.sharedBucket
        let folder = NSTemporaryDirectory() + "coffre-outage-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        defer { try? Self.harness(["start-gateway", "b"]) }
        let prefix = S3TestGateway.newPrefix("outage")
        let retry = S3RetryPolicy(maxAttempts: 4, baseDelay: 0.05, maxDelay: 0.5, maxTotal: 3)
        let store = try S3ChunkStore.open(TestS3.location(endpoint: endpoint).with(prefix: prefix),
                                          credentials: TestS3.credentials, retry: retry, requestTimeout: 5)
        let vault = try Vault.create(in: store, cacheDirectory: folder, blockSize: Self.block)
        var generator = SeededGenerator(seed: 77)
        let first = generator.bytes(256 << 20)
        let kept = try await vault.backup(item: "vm", disks: [MemoryBlockDevice(name: "d", bytes: Array(first.prefix(1 << 20)))])

        // A 256 MiB backup; the gateway dies (SIGKILL) once its first pack is stored.
        let requestsBefore = store.requestCounts.put
        let backup = Task { try await vault.backup(item: "vm", disks: [MemoryBlockDevice(name: "d", bytes: first)]) }
        while store.requestCounts.put < requestsBefore + 2 { try await Task.sleep(for: .milliseconds(5)) }
        try Self.harness(["kill-gateway", "b"])
        let outcome = await backup.result
        let error = try #require(outcome.failure as? CoffreError, "the backup must fail with a CoffreError: \(outcome)")
        #expect(error.code == .s3Unreachable, "\(error)")
        try Self.harness(["start-gateway", "b"])

        // Nothing half-visible; the next backup (same process, same vault) works; nothing lost.
        #expect(try vault.points().map(\.id) == [kept.id])
        let next = try await vault.backup(item: "vm", disks: [MemoryBlockDevice(name: "d", bytes: first)])
        let fresh = try Self.direct(prefix, cache: folder)
        #expect(try fresh.points().map(\.id) == [kept.id, next.id])
        #expect(try await Self.restored(fresh, next.id, in: folder) == first)
        #expect(try await Self.restored(fresh, kept.id, in: folder) == Array(first.prefix(1 << 20)))
        _ = try fresh.collectGarbage()
        #expect(try fresh.verify().clean)
        try store.delete(store.list(prefix: "").map(\.key))
    }
}

extension Result {
    var failure: Failure? { if case .failure(let error) = self { error } else { nil } }
}

extension S3Location {
    func with(prefix: String) -> S3Location {
        var copy = self
        copy.prefix = prefix
        return copy
    }
}
