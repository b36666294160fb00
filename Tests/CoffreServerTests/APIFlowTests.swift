import CoffreCore
import CoffreEngine
@testable import CoffreServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The seed 000 flow and the error mapping, in-process through the router.
@Suite struct APIFlowTests {
    static let nightly = #"{"name": "nightly", "schedule": {"frequency": "daily", "weekdays": [], "time": "22:00", "timeZone": "Europe/Paris"}, "retention": {"days": 30, "weeks": 12}}"#

    @Test func discoverRegisterProtectBackupRestore() async throws {
        let harness = try await ServerHarness()
        try harness.addVM("web01")
        try harness.addVM("web01", cloudService: "test")
        try harness.addVM("db01", disks: 2)
        try await harness.app.test(.router) { client in
            let api = APIClient(client: client, harness: harness)
            var response = try await api.send(.post, "/api/v1/discovery", as: .operator)
            #expect(response.status == .accepted)
            let discovery = try api.decode(Job.self, response)
            #expect(response.headers[.location] == "/api/v1/jobs/\(discovery.id)")
            try await harness.finish(discovery.id)

            response = try await api.send(.get, "/api/v1/vms?unregistered=true", as: .reader)
            #expect(try api.decode([VMView].self, response).map(\.vm.key.description).sorted() == ["prod/db01", "prod/web01", "test/web01"])

            // Bulk registration: one job per VM, an error per VM that cannot start.
            response = try await api.send(.post, "/api/v1/registrations", as: .operator, json: #"{"vms": ["prod/web01", "db01", "ghost"]}"#)
            #expect(response.status == .accepted)
            let registration = try api.decode(BulkResponse.self, response)
            #expect(registration.jobs.count == 2)
            #expect(registration.errors.map(\.code) == [.vmNotFound])
            for job in registration.jobs { try await harness.finish(job.id) }

            response = try await api.send(.post, "/api/v1/policies", as: .operator, json: Self.nightly)
            #expect(response.status == .created)
            response = try await api.send(.post, "/api/v1/policies", as: .operator, json: Self.nightly)
            #expect(response.status == .conflict)

            response = try await api.send(.post, "/api/v1/protection", as: .operator, json: #"{"vms": ["prod/web01", "db01"], "policy": "nightly"}"#)
            #expect(response.status == .accepted)
            for job in try api.decode(BulkResponse.self, response).jobs { try await harness.finish(job.id) }
            response = try await api.send(.post, "/api/v1/protection", as: .operator, json: #"{"vms": ["db01"], "policy": "nightly"}"#)
            #expect(response.status == .conflict)
            #expect(try api.decode(BulkResponse.self, response).errors.map(\.code) == [.alreadyProtected])

            response = try await api.send(.get, "/api/v1/dashboard", as: .reader)
            var board = try api.decode(Dashboard.self, response)
            #expect(board.protectedVMs == 2)
            #expect(board.pendingInitialBackup == 2)

            response = try await api.send(.post, "/api/v1/vms/db01/backup", as: .operator, json: #"{"retainUntil": "2099-01-31T00:00:00Z"}"#)
            #expect(response.status == .accepted)
            let backup = try await harness.finish(try api.decode(Job.self, response).id)
            #expect(backup.details["retainUntil"]?.hasPrefix("2099-01-31") == true)
            response = try await api.send(.post, "/api/v1/vms/prod%2Fweb01/backup", as: .operator)
            #expect(response.status == .accepted)
            try await harness.finish(try api.decode(Job.self, response).id)

            response = try await api.send(.get, "/api/v1/vms/db01/points", as: .reader)
            let points = try api.decode(PointsView.self, response)
            #expect(points.points.count == 1)
            let point = try #require(points.points.first)
            #expect(point.point.disks.count == 2)

            // Jobs, filtered.
            response = try await api.send(.get, "/api/v1/jobs?type=backup&status=Succeeded&since=24h&vm=db01&limit=5", as: .reader)
            #expect(try api.decode([Job].self, response).map(\.id) == [backup.id])
            response = try await api.send(.get, "/api/v1/jobs/\(backup.id)", as: .reader)
            #expect(try api.decode(Job.self, response).status == .succeeded)
            response = try await api.send(.post, "/api/v1/jobs/\(backup.id)/cancel", as: .operator)
            #expect(response.status == .conflict)
            #expect(try api.decode(APIError.Body.self, response).code == .jobNotRunning)

            // Restore into a folder under the restore root.
            response = try await api.send(.post, "/api/v1/vms/db01/restore", as: .operator, json: #"{"point": "\#(point.point.id)", "folder": "db01-copy"}"#)
            #expect(response.status == .accepted)
            try await harness.finish(try api.decode(Job.self, response).id)
            let restored = try Data(contentsOf: URL(fileURLWithPath: harness.folder + "/restores/db01-copy/os.img"))
            let original = try Data(contentsOf: URL(fileURLWithPath: harness.folder + "/fabric/prod/db01/os.img"))
            #expect(restored == original)
            // The same point as a qcow2 image: QEMU's magic, the disk's virtual size.
            response = try await api.send(.post, "/api/v1/vms/db01/restore", as: .operator,
                                          json: #"{"point": "\#(point.point.id)", "folder": "db01-qcow2", "format": "qcow2"}"#)
            #expect(response.status == .accepted)
            try await harness.finish(try api.decode(Job.self, response).id)
            let image = [UInt8](try Data(contentsOf: URL(fileURLWithPath: harness.folder + "/restores/db01-qcow2/os.qcow2")))
            #expect(image.prefix(4) == [0x51, 0x46, 0x49, 0xFB])
            #expect(image[24..<32].reduce(0) { $0 << 8 | Int($1) } == original.count)
            // Verify the point: its data read back; the outcome is on the point.
            response = try await api.send(.post, "/api/v1/vms/db01/verify", as: .operator, json: #"{"checks": ["data"]}"#)
            #expect(response.status == .accepted)
            let verify = try await harness.finish(try api.decode(Job.self, response).id)
            #expect(verify.type == .verify && verify.status == .succeeded && verify.details["point"] == point.point.id)
            response = try await api.send(.get, "/api/v1/vms/db01/points", as: .reader)
            let verified = try #require(try api.decode(PointsView.self, response).points.first?.point.verification)
            #expect(verified.succeeded && verified.job == verify.id)
            response = try await api.send(.get, "/api/v1/dashboard", as: .reader)
            #expect(try api.decode(Dashboard.self, response).verificationsPassed == 1)
            response = try await api.send(.post, "/api/v1/vms/db01/restore", as: .admin, json: #"{"point": "\#(point.point.id)", "replaceDisks": true}"#)
            #expect(response.status == .badRequest)
            #expect(try api.decode(APIError.Body.self, response).code == .confirmationRequired)

            // Stop (delete data, admin), undelete, resume.
            response = try await api.send(.post, "/api/v1/vms/db01/stop-protection", as: .admin, json: #"{"deleteData": true}"#)
            #expect(response.status == .accepted)
            try await harness.finish(try api.decode(Job.self, response).id)
            response = try await api.send(.post, "/api/v1/vms/db01/backup", as: .operator)
            #expect(response.status == .conflict)
            #expect(try api.decode(APIError.Body.self, response).code == .itemSoftDeleted)
            response = try await api.send(.post, "/api/v1/vms/db01/undelete", as: .operator)
            #expect(response.status == .accepted)
            try await harness.finish(try api.decode(Job.self, response).id)
            response = try await api.send(.post, "/api/v1/vms/db01/resume", as: .operator)
            #expect(response.status == .accepted)
            try await harness.finish(try api.decode(Job.self, response).id)

            response = try await api.send(.get, "/api/v1/dashboard", as: .reader)
            board = try api.decode(Dashboard.self, response)
            #expect(board.protectedVMs == 2)
            #expect(board.pendingInitialBackup == 0)
            #expect(board.jobsFailed == 0)

            response = try await api.send(.get, "/api/v1/policies/nightly", as: .reader)
            #expect(try api.decode(PolicyView.self, response).items.count == 2)
            response = try await api.send(.get, "/api/v1/protected-items", as: .reader)
            #expect(try api.decode([ItemSummary].self, response).count == 2)

            // Metrics count the jobs that ended.
            response = try await api.send(.get, "/metrics", as: .reader)
            let metrics = String(buffer: response.body)
            #expect(metrics.contains(#"coffre_jobs_total{type="Backup",status="Succeeded"} 2"#), "\(metrics)")
            #expect(metrics.contains("coffre_backup_duration_seconds_count 2"))
            #expect(metrics.contains("coffre_read_bytes_total"))
            #expect(metrics.contains("coffre_vault_stored_bytes"))
        }
        await harness.engine.cancelAllAndWait()
    }

    @Test func errorsCarryCodeMessageAndWorkaround() async throws {
        let harness = try await ServerHarness()
        try await harness.app.test(.router) { client in
            let api = APIClient(client: client, harness: harness)
            let cases: [(HTTPRequest.Method, String, String?, Int, CoffreError.Code)] = [
                (.get, "/api/v1/vms/ghost", nil, 404, .vmNotFound),
                (.get, "/api/v1/policies/ghost", nil, 404, .policyNotFound),
                (.get, "/api/v1/jobs/job-ghost", nil, 404, .jobNotFound),
                (.get, "/api/v1/jobs?type=Nope", nil, 400, .invalidFilter),
                (.get, "/api/v1/jobs?since=yesterday", nil, 400, .invalidFilter),
                (.get, "/api/v1/jobs?limit=-1", nil, 400, .invalidFilter),
                (.get, "/api/v1/vms?unregistered=maybe", nil, 400, .invalidRequest),
                (.post, "/api/v1/policies", #"{"name": 1}"#, 400, .invalidRequest),
                (.post, "/api/v1/policies", "not json", 400, .invalidRequest),
                (.post, "/api/v1/policies", #"{"name": "bad", "schedule": {"frequency": "daily", "weekdays": [], "time": "25:00", "timeZone": "UTC"}, "retention": {"days": 30}}"#, 400, .invalidSchedule),
                (.post, "/api/v1/policies", #"{"name": "bad", "schedule": {"frequency": "daily", "weekdays": [], "time": "22:00", "timeZone": "UTC"}, "retention": {"days": 0}}"#, 400, .invalidRetention),
                (.post, "/api/v1/registrations", #"{"vms": []}"#, 400, .invalidRequest),
                (.post, "/api/v1/vms/ghost/restore", #"{"point": "rp"}"#, 400, .invalidRestoreTarget),
                (.post, "/api/v1/vms/ghost/restore", #"{"point": "rp", "folder": "../etc"}"#, 400, .invalidRestoreTarget),
                (.post, "/api/v1/vms/ghost/restore", #"{"point": "rp", "folder": "x", "format": "vmdk"}"#, 400, .invalidDiskFormat),
                (.post, "/api/v1/vms/ghost/restore", #"{"point": "rp", "newVmName": "x", "format": "qcow2"}"#, 400, .invalidRestoreTarget),
                (.post, "/api/v1/vms/ghost/restore", #"{"point": "rp", "folder": "x", "instant": true}"#, 400, .invalidRestoreTarget),
                (.post, "/api/v1/vms/prod%2Fweb01/verify", #"{"checks": ["smell"]}"#, 400, .invalidArgument),
                (.post, "/api/v1/vms/prod%2Fweb01/verify", #"{"checks": []}"#, 400, .invalidArgument),
                (.post, "/api/v1/vms/ghost/verify", nil, 404, .vmNotFound),
                (.post, "/api/v1/vms/ghost/backup", nil, 404, .vmNotFound),
                (.get, "/api/v1/nothing-here", nil, 404, .routeNotFound),
                (.delete, "/api/v1/vms/prod%2Fweb01/backup", nil, 405, .methodNotAllowed),
                (.get, "/api/v1/registrations", nil, 405, .methodNotAllowed),
            ]
            for (method, uri, body, status, code) in cases {
                let response = try await api.send(method, uri, as: .admin, json: body)
                #expect(Int(response.status.code) == status, "\(method) \(uri): \(String(buffer: response.body))")
                let error = try? api.decode(APIError.Body.self, response)
                #expect(error?.code == code, "\(method) \(uri): \(String(buffer: response.body))")
                #expect(error?.message.isEmpty == false)
                if status == 405 { #expect(response.headers[.allow] == "POST", "\(uri)") }
            }
            // Discovery twice at once: the second is a conflict.
            try harness.addVM("web01")
            let first = try await api.send(.post, "/api/v1/discovery", as: .operator)
            let second = try await api.send(.post, "/api/v1/discovery", as: .operator)
            #expect(first.status == .accepted)
            #expect([202, 409].contains(second.status.code))
            if second.status == .conflict { #expect(try api.decode(APIError.Body.self, second).code == .discoveryInProgress) }
        }
        await harness.engine.cancelAllAndWait()
    }

    @Test func everyStatusComesFromOneTable() {
        #expect(APIError.status(of: .anotherOperationInProgress) == .conflict)
        #expect(APIError.status(of: .alreadyProtected) == .conflict)
        #expect(APIError.status(of: .discoveryInProgress) == .conflict)
        #expect(APIError.status(of: .recoveryPointNotFound) == .notFound)
        #expect(APIError.status(of: .invalidSchedule) == .badRequest)
        #expect(APIError.status(of: .internalError) == .internalServerError)
    }

    @Test func retentionDecrease() {
        let base = Retention(days: 30, weeks: 4)
        #expect(Retention(days: 29, weeks: 4).decreases(from: base))
        #expect(Retention(days: 30).decreases(from: base))
        #expect(!Retention(days: 30, weeks: 4, months: 1).decreases(from: base))
        #expect(!Retention(days: 60, weeks: 8).decreases(from: base))
    }
}

@Suite struct FilterTests {
    @Test func sinceAcceptsDurationsDaysAndInstants() throws {
        let now = try #require(ISO8601DateFormatter().date(from: "2026-11-23T08:00:00Z"))
        #expect(try DateText.since("24h", now: now) == now.addingTimeInterval(-86_400))
        #expect(try DateText.since("7d", now: now) == now.addingTimeInterval(-7 * 86_400))
        #expect(try DateText.since("2026-11-01", now: now) == ISO8601DateFormatter().date(from: "2026-11-01T00:00:00Z"))
        #expect(try DateText.since("2026-11-22T10:00:00Z", now: now) == ISO8601DateFormatter().date(from: "2026-11-22T10:00:00Z"))
        #expect(throws: CoffreError.self) { try DateText.since("soon", now: now) }
    }

    @Test func untilIsTheEndOfTheDayOrTheInstant() throws {
        #expect(try DateText.until("2027-01-31") == ISO8601DateFormatter().date(from: "2027-01-31T23:59:59Z"))
        #expect(try DateText.until("2027-01-31T18:00:00Z") == ISO8601DateFormatter().date(from: "2027-01-31T18:00:00Z"))
        #expect(throws: CoffreError.self) { try DateText.until("2027-1-31") }
        #expect(throws: CoffreError.self) { try DateText.until("tomorrow") }
    }
}
