import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// kill -9 at random moments of `image backup`, `image expire` and `vault gc`; after each kill the
/// vault verifies clean and every listed point restores exactly the content it was taken from.
/// Timing-sensitive: serialized and kept apart from the other suites' data.
@Suite("CLI crash safety (kill -9)", .serialized)
struct CrashSafetyTests {
    /// The disk's content per generation is `base` plus the first `g` mutation batches,
    /// so any generation can be rebuilt without keeping a copy per backup attempt.
    struct History {
        let base: Data
        var batches: [[(offset: Int, data: Data)]] = []
        func content(generation g: Int) -> Data {
            var d = base
            for batch in batches[0..<g] {
                for w in batch { d.replaceSubrange(w.offset..<(w.offset + w.data.count), with: w.data) }
            }
            return d
        }
    }

    enum Op: String { case backup, expire, gc, repack }

    @Test("at least 30 kill points across backup, expire, collection and repacking")
    func killNine() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            var rng = SplitMix64(seed: 0xDEAD_0009)
            let bs = 16 * KiB
            let size = 32 * MiB
            let vault = tmp.appendingPathComponent("vault")
            try coffre.createVault(vault, blockSize: "16KiB")
            let vaultName = CLIStore.name(vault)
            let src = try makeDir(tmp.appendingPathComponent("src"))

            // Mostly random data with a 2 MiB hole.
            var disk = try Disk(create: src.appendingPathComponent("vm.img"), size: size)
            try disk.write(rng.bytes(8 * MiB), at: 0)
            try disk.write(rng.bytes(size - 10 * MiB), at: 10 * MiB)
            var history = History(base: disk.content)
            var generation = 0
            var known: [String: Int] = [:]   // point id -> generation it was taken from
            var order: [String] = []         // known ids, oldest first

            /// Light: a few dozen blocks. Heavy: about a quarter of the disk, so the backup
            /// spends a long time writing chunks and index pages.
            func mutate(heavy: Bool = false) throws {
                var batch: [(offset: Int, data: Data)] = []
                let count = heavy ? rng.int((size / bs / 5)..<(size / bs / 3)) : rng.int(1..<60)
                for _ in 0..<count {
                    let block = rng.int(0..<(size / bs))
                    let data: Data
                    var offset = block * bs
                    switch rng.int(0..<4) {
                    case 0: data = Data(count: bs)                   // zeroed block
                    case 1:                                          // small in-block edit
                        data = rng.bytes(rng.int(1..<300))
                        offset += rng.int(0..<(bs - data.count))
                    default: data = rng.bytes(bs)                    // brand-new block
                    }
                    try disk.write(data, at: offset)
                    batch.append((offset, data))
                }
                history.batches.append(batch)
                generation += 1
                precondition(history.batches.count == generation)
            }
            func backupArgs() -> [String] {
                ["image", "backup", "--vault", vaultName, "--item", "vm", "--no-progress", disk.url.path]
            }
            func listed() throws -> [String] { try coffre.points(vault, item: "vm").map(\.id) }
            var restoreCount = 0
            func checkRestore(_ id: String) throws {
                let g = try #require(known[id], "point \(id) has no recorded generation")
                restoreCount += 1
                let dir = tmp.appendingPathComponent("restore-\(restoreCount)")
                try expectRestoreMatches(coffre, vault: vault, point: id,
                                         disks: [(disk.name, history.content(generation: g))], into: dir)
                try FileManager.default.removeItem(at: dir)
            }
            func checkVerify(_ context: String) throws {
                let (r, report) = try coffre.verify(vault)
                #expect(r.succeeded, "\(context): verify must exit 0: \(r)")
                let rep = try #require(report, "\(context): verify output: \(r)")
                #expect(rep.clean && rep.damagedChunks.isEmpty && rep.missingChunks.isEmpty && rep.brokenPoints.isEmpty,
                        "\(context): verify not clean: \(r.stdout)")
            }

            func restoredEqualsDisk(_ id: String) throws -> Bool {
                let dir = try makeDir(tmp.appendingPathComponent("final-\(id.filter { $0.isLetter || $0.isNumber })"))
                try coffre.restore(vault, point: id, to: dir)
                return try readFile(dir.appendingPathComponent(disk.name)) == readFile(disk.url)
            }

            // Setup with uninterrupted runs, measuring each operation's duration.
            var durations: [Double] = []
            for i in 0..<4 {
                if i > 0 { try mutate(heavy: i == 1) }
                let r = try coffre.ok(backupArgs())
                let id = try #require(r.stdoutLines.first, "backup printed no id: \(r)")
                known[id] = generation
                order.append(id)
                durations.append(r.duration)
            }
            let heavyDuration = durations[1]
            let backupDuration = max(durations[2], durations[3])
            #expect(try listed() == order)
            let expireRun = try coffre.ok(["image", "expire", "--vault", vaultName, "--point", order[0]])
            let expireDuration = expireRun.duration
            known[order.removeFirst()] = nil
            try coffre.expire(vault, point: order[0], noGC: true)
            known[order.removeFirst()] = nil
            let gcRun = try coffre.ok(["vault", "gc", "--vault", vaultName, "--json"])
            let gcDuration = gcRun.duration
            #expect(try listed() == order)
            print("crash test: full backup \(durations[0])s, heavy \(heavyDuration)s, light \(backupDuration)s, expire \(expireDuration)s, gc \(gcDuration)s")

            // Kill points. Each kill comes at a random moment within the operation's window; an
            // operation that finished before its kill narrows its window to the time it took, so
            // a slower setup run (a busy machine, a remote store) does not waste the attempts.
            var window: [String: Double] = [
                "backup": backupDuration, "heavy backup": heavyDuration, "expire": expireDuration,
                "gc": gcDuration, "repack": 3 * gcDuration,
            ]
            func killAfter(_ key: String) -> Double { rng.double(0...window[key]!) }
            func finishedEarly(_ key: String, _ result: RunResult) {
                if !result.signaled { window[key] = max(0.02, min(window[key]!, result.duration)) }
            }
            // Kill points.
            var kills: [Op: Int] = [.backup: 0, .expire: 0, .gc: 0, .repack: 0]
            var attempts = 0
            var killedBackups = 0
            var killedButCommitted = 0
            let started = Date()
            while kills.values.reduce(0, +) < 34 && attempts < 120 {
                attempts += 1
                var op: Op = [.backup, .backup, .expire, .gc, .repack][rng.int(0..<5)]
                // Make sure expire gets its kills even when backups keep being chosen.
                if kills[.expire, default: 0] < 3 && attempts % 5 == 0 { op = .expire }
                if op != .backup {
                    // Keep enough points around to expire some (uninterrupted backups).
                    while order.count < 3 {
                        try mutate()
                        let id = try coffre.backup(vault, item: "vm", disks: [disk.url])
                        known[id] = generation
                        order.append(id)
                    }
                }
                let context = "attempt \(attempts) (\(op.rawValue))"
                let result: RunResult
                var target: String? = nil
                switch op {
                case .backup:
                    let heavy = rng.int(0..<3) == 0
                    try mutate(heavy: heavy)
                    let key = heavy ? "heavy backup" : "backup"
                    result = try runProcess(coffre.binary, backupArgs(), killAfter: killAfter(key))
                    finishedEarly(key, result)
                case .expire:
                    // Never the newest point, so a backup always has a parent to share with.
                    let victim = order[rng.int(0..<(order.count - 1))]
                    target = victim
                    result = try runProcess(coffre.binary, ["image", "expire", "--vault", vaultName, "--point", victim],
                                            killAfter: killAfter("expire"))
                    finishedEarly("expire", result)
                case .gc, .repack:
                    // Give gc something to collect.
                    do {
                        let victim = order[rng.int(0..<(order.count - 1))]
                        try coffre.expire(vault, point: victim, noGC: true)
                        known[victim] = nil
                        order.removeAll { $0 == victim }
                    }
                    // Repacking every pack with garbage copies live blocks into new packs first.
                    let args = ["vault", "gc", "--vault", vaultName] + (op == .repack ? ["--max-unused", "0"] : [])
                    result = try runProcess(coffre.binary, args, killAfter: killAfter(op.rawValue))
                    finishedEarly(op.rawValue, result)
                }
                #expect(!result.timedOut, "\(context): \(result)")
                if result.signaled {
                    kills[op, default: 0] += 1
                    if op == .backup { killedBackups += 1 }
                } else {
                    #expect(result.status == 0, "\(context): finished before the kill but failed: \(result)")
                }

                // Points: nothing lost, at most the attempted change.
                let now = try listed()
                switch op {
                case .backup:
                    let new = now.filter { known[$0] == nil }
                    #expect(new.count <= 1, "\(context): several new points \(new)")
                    #expect(Array(now.filter { known[$0] != nil }) == order, "\(context): points lost: \(order) -> \(now)")
                    if !result.signaled && result.status == 0 {
                        #expect(new == result.stdoutLines, "\(context): finished backup's point not listed")
                    }
                    if result.signaled && !new.isEmpty { killedButCommitted += 1 }
                    for id in new {
                        known[id] = generation
                        order.append(id)
                    }
                    #expect(now == order, "\(context): order \(now) vs \(order)")
                case .expire:
                    let victim = target!
                    let without = order.filter { $0 != victim }
                    #expect(now == order || now == without, "\(context): expire of \(victim): \(order) -> \(now)")
                    if !now.contains(victim) {
                        known[victim] = nil
                        order = without
                    } else {
                        #expect(result.signaled, "\(context): expire exited 0 but the point is still listed")
                    }
                case .gc, .repack:
                    #expect(now == order, "\(context): gc changed the points: \(order) -> \(now)")
                }
                try checkVerify(context)
                if let id = now.filter({ known[$0] != nil }).randomElement(using: &rng) {
                    try checkRestore(id)
                }
            }
            let totalKills = kills.values.reduce(0, +)
            print("crash test: \(attempts) attempts, kills \(kills.map { "\($0.key.rawValue): \($0.value)" }.sorted()), "
                  + "\(killedButCommitted) of \(killedBackups) killed backups had committed, "
                  + "\(Date().timeIntervalSince(started))s, final windows \(window.mapValues { ($0 * 1000).rounded() / 1000 })")
            #expect(totalKills >= 30, "only \(totalKills) operations were actually killed: \(kills)")
            for op in [Op.backup, .expire, .gc, .repack] {
                #expect(kills[op, default: 0] >= 1, "no \(op.rawValue) was killed: \(kills)")
            }

            // Every listed point restores exactly.
            let final = try listed()
            #expect(final == order)
            for id in final { try checkRestore(id) }

            // The vault is fully usable: a new backup, restore, gc and verify.
            try mutate()
            let last = try coffre.backup(vault, item: "vm", disks: [disk.url])
            known[last] = generation
            #expect(try listed() == order + [last])
            try checkRestore(last)
            #expect(try restoredEqualsDisk(last))
            try coffre.ok(["vault", "gc", "--vault", vaultName])
            try checkVerify("final")
            // What the killed runs left (their packs, sessions, a half-done collection) is all
            // collected by one collection that repacks everything.
            try coffre.ok(["vault", "gc", "--vault", vaultName, "--max-unused", "0"])
            let stats = try coffre.ok(["vault", "stats", "--vault", vaultName, "--json"])
            #expect(stats.stdout.contains("\"unusedBytes\" : 0,"), "garbage left: \(stats.stdout)")
            #expect(stats.stdout.contains("\"condemnedPacks\" : 0,"), "condemned packs left: \(stats.stdout)")
            try checkVerify("after the last collection")

        }
    }
}
