import Foundation
import Testing

/// `/metrics` of a live `coffre serve`: what Prometheus's own lint accepts, with the numbers an
/// operator alerts on, and the sample alert rules that docs/monitoring ships.
@Suite("metrics for Prometheus", .serialized)
struct MetricsTests {
    struct Points: Decodable {
        var points: [Row]
        struct Row: Decodable { var point: Point }
        struct Point: Decodable {
            var takenAt: String
            var stats: Stats
        }
        struct Stats: Decodable { var bytesWritten: Int64 }
    }

    /// Debian's `prometheus` package (scripts/test installs it when missing).
    static let promtool = URL(fileURLWithPath: "/usr/bin/promtool")
    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    @Test("after a backup, promtool check metrics finds nothing to lint, and the item's last backup, points and bytes, the jobs and the vault's space are there")
    func promtoolAcceptsTheMetrics() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.promtool.path),
                "promtool is missing: scripts/test installs Debian's prometheus package")
        let coffre = try Coffre()
        try withTempDir { tmp in
            let data = tmp.appendingPathComponent("data")
            var rng = SplitMix64(seed: 41)
            _ = try ControlPlaneTests().makeVM(data, name: "web01", size: 8 * MiB, content: rng.bytes(2 * MiB))
            let server = try ServerProcess(coffre, data: data)
            let env = server.adminEnvironment
            try coffre.ok(["discover"], env: env)
            try coffre.ok(["register", "prod/web01"], env: env)
            try coffre.ok(["policy", "create", "nightly", "--daily", "22:00", "--keep-days", "30"], env: env)
            try coffre.ok(["protect", "web01", "--policy", "nightly"], env: env)

            let web = #"{vm="prod/web01"}"#
            let pending = try Self.metrics(server)
            #expect(pending.values["coffre_item_points" + web] == 0 && pending.values["coffre_item_scheduled" + web] == 1)
            #expect(pending.values["coffre_item_last_backup_timestamp_seconds" + web] == nil, "no backup yet: no timestamp")

            try coffre.ok(["backup", "web01"], env: env)
            let after = try Self.metrics(server)
            let file = tmp.appendingPathComponent("metrics.txt")
            try Data(after.text.utf8).write(to: file)
            let lint = try runProcess(URL(fileURLWithPath: "/bin/sh"), ["-c", #""$0" check metrics < "$1""#, Self.promtool.path, file.path])
            #expect(lint.succeeded && lint.stdout.isEmpty && lint.stderr.isEmpty, "promtool check metrics: \(lint)\n\(after.text)")

            let points = try decodeJSON(Points.self, try coffre.ok(["points", "web01", "--json"], env: env).stdout).points
            let point = try #require(points.first?.point)
            let takenAt = try #require(ISO8601DateFormatter().date(from: point.takenAt)).timeIntervalSince1970
            let last = try #require(after.values["coffre_item_last_backup_timestamp_seconds" + web])
            #expect(abs(last - takenAt) < 1, "last backup \(last), point taken at \(takenAt)")
            #expect(after.values["coffre_item_points" + web] == 1)
            #expect(after.values["coffre_item_added_bytes" + web] == Double(point.stats.bytesWritten) && point.stats.bytesWritten > 0)
            // Its only point holds every object it references alone: at least what it wrote.
            let held = try #require(after.values["coffre_item_stored_bytes" + web])
            #expect(held >= Double(point.stats.bytesWritten) && held > 0, "stored bytes \(held), written \(point.stats.bytesWritten)")
            #expect(after.values[#"coffre_jobs_total{type="Backup",status="Succeeded"}"#] == 1)
            #expect(after.values[#"coffre_jobs_running{type="Backup"}"#] == 0 && after.values[#"coffre_jobs_queued{type="Backup"}"#] == 0)
            #expect((after.values["coffre_vault_available_bytes"] ?? 0) > 0)
            #expect((after.values["coffre_vault_stored_bytes"] ?? 0) >= Double(point.stats.bytesWritten))
            #expect(after.values["coffre_backup_duration_seconds_count"] == 1)
            let copied = try #require(after.values["coffre_catalog_copy_timestamp_seconds"], "no catalog copy measured")
            #expect(copied >= takenAt - 1, "the newest catalog copy (\(copied)) predates the backup (\(takenAt))")
            #expect(after.values.keys.contains { $0.hasPrefix("coffre_http_requests_total{route=\"/api/v1/") && $0.contains(#"code="200""#) },
                    "\(after.text)")
            #expect(after.values.keys.contains { $0.hasPrefix("coffre_build_info{version=") })

            // Stopped: no longer scheduled, so the sample rule stops expecting backups of it.
            try coffre.ok(["stop-protection", "web01", "--retain-data"], env: env)
            #expect(try Self.metrics(server).values["coffre_item_scheduled" + web] == 0)
            #expect(server.stop() == 0)
        }
        let rules = try runProcess(Self.promtool, ["check", "rules", Self.repository.appendingPathComponent("docs/monitoring/coffre-alerts.yml").path])
        #expect(rules.succeeded && rules.stdout.contains("SUCCESS"), "\(rules)")
    }

    /// `/metrics` as the server's first admin: the text and each sample's value by its series.
    static func metrics(_ server: ServerProcess) throws -> (text: String, values: [String: Double]) {
        let token = try String(contentsOf: server.data.appendingPathComponent("admin-token"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/curl"),
                                    ["-sf", "-m", "30", "-H", "Authorization: Bearer \(token)"] + server.curlTrust + [server.url + "/metrics"])
        guard result.status == 0 else { throw HarnessError("GET /metrics failed: \(result)") }
        var values: [String: Double] = [:]
        for line in result.stdout.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            values[String(line[..<space])] = value
        }
        return (result.stdout, values)
    }
}
