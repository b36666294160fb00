import CoffreCore
@testable import CoffreServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The dashboard's pages through the router: sign-in and redirects, every tab rendered,
/// escaping, roles, the same-origin check on form posts, and the seed-000 flow by form posts.
@Suite struct DashboardTests {
    /// A browser-like request: the session cookie of `role`, a same-origin form post.
    struct Browser {
        let client: any TestClientProtocol
        let harness: ServerHarness
        var role: Role? = .admin

        func get(_ uri: String, as caller: Role?? = nil) async throws -> TestResponse {
            try await client.execute(uri: uri, method: .get, headers: headers(for: caller ?? role), body: nil)
        }

        func post(_ uri: String, _ form: String, as caller: Role?? = nil, origin: String? = "http://localhost",
                  site: String? = "same-origin") async throws -> TestResponse {
            var fields = headers(for: caller ?? role)
            fields[.contentType] = "application/x-www-form-urlencoded"
            if let origin { fields[.origin] = origin }
            if let site { fields[.secFetchSite] = site }
            return try await client.execute(uri: uri, method: .post, headers: fields, body: ByteBuffer(string: form))
        }

        func headers(for role: Role?) -> HTTPFields {
            var fields = HTTPFields()
            if let role, let token = harness.tokenByRole[role] { fields[.cookie] = "coffre_token=\(token)" }
            return fields
        }

        /// Follows a 303 to the job page and waits for the job's end through the engine.
        func jobID(from response: TestResponse) throws -> String {
            #expect(response.status == .seeOther, "\(String(buffer: response.body))")
            let location = try #require(response.headers[.location])
            #expect(location.hasPrefix("/jobs/job-"))
            return String(location.dropFirst("/jobs/".count))
        }
    }

    static func html(_ response: TestResponse) -> String { String(buffer: response.body) }

    @Test func anonymousVisitorsAreSentToSignIn() async throws {
        let harness = try await ServerHarness()
        try await harness.app.test(.router) { client in
            let browser = Browser(client: client, harness: harness, role: nil)
            for page in ["/", "/vms", "/protected", "/jobs", "/policies", "/jobs/job-none", "/vms/prod%2Fweb01/points"] {
                let response = try await browser.get(page)
                #expect(response.status == .seeOther, "\(page)")
                #expect(response.headers[.location] == "/login?next=" + DashboardFormat.segment(page), "\(page)")
            }
            let discover = try await browser.post("/vms/discover", "")
            #expect(discover.status == .seeOther)
            #expect(try await harness.engine.jobs(JobFilter()).isEmpty, "an anonymous post must start nothing")
            let login = try await browser.get("/login?next=%2Fjobs")
            #expect(login.status == .ok)
            #expect(Self.html(login).contains(#"name="next" value="/jobs""#))
            #expect(login.headers[.contentSecurityPolicy]?.contains("script-src 'self'") == true)
            for asset in ["/static/dashboard.css", "/static/dashboard.js", "/static/favicon.svg"] {
                #expect(try await browser.get(asset).status == .ok, "\(asset)")
            }
            let progress = try await browser.get("/ui/jobs/job-none/progress")
            #expect(progress.status == .unauthorized)
        }
    }

    @Test func signInSetsAStrictHttpOnlyCookieAndRefusesUnknownTokens() async throws {
        let harness = try await ServerHarness()
        try await harness.app.test(.router) { client in
            let browser = Browser(client: client, harness: harness, role: nil)
            let token = try #require(harness.tokenByRole[.reader])
            let signIn = try await browser.post("/login", "token=\(token)&next=%2Fjobs")
            #expect(signIn.status == .seeOther)
            #expect(signIn.headers[.location] == "/jobs")
            let cookie = try #require(signIn.headers[.setCookie])
            #expect(cookie.contains("coffre_token=\(token)") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))

            let offsite = try await browser.post("/login", "token=\(token)&next=%2F%2Fevil.example")
            #expect(offsite.headers[.location] == "/", "next must stay on this server")

            var stale = browser.headers(for: nil)
            stale[.cookie] = "coffre_token=revoked-token-value"
            let page = try await client.execute(uri: "/", method: .get, headers: stale, body: nil)
            #expect(page.status == .seeOther)
            #expect(page.headers[.location]?.hasSuffix("&invalid=1") == true)
            #expect(page.headers[.setCookie]?.contains("Max-Age=0") == true)
        }
    }

    @Test func everyTabRendersAndReadersSeeNoActions() async throws {
        let harness = try await ServerHarness()
        try harness.addVM("web01")
        try await harness.app.test(.router) { client in
            let reader = Browser(client: client, harness: harness, role: .reader)
            for (page, title) in [("/", "Dashboard"), ("/vms", "Registered items"), ("/protected", "Protected items"),
                                  ("/jobs", "Jobs"), ("/policies", "Policies")] {
                let response = try await reader.get(page)
                #expect(response.status == .ok, "\(page)")
                let html = Self.html(response)
                #expect(html.contains("<h1>\(title)</h1>"), "\(page)")
                #expect(html.contains(#"aria-current="page""#), "\(page): the active tab")
                for action in [#"id="discover""#, #"id="register""#, #"id="protect-form""#, #"id="policy-form""#, "backup-now"] {
                    #expect(!html.contains(action), "\(page): a reader sees no \(action)")
                }
            }
            let refused = try await reader.post("/vms/discover", "")
            #expect(refused.status == .forbidden)
            #expect(Self.html(refused).contains("Forbidden"))
            #expect(try await harness.engine.jobs(JobFilter()).isEmpty)
            let operatorPage = Self.html(try await reader.get("/vms", as: .operator))
            #expect(operatorPage.contains(#"id="discover""#))
        }
    }

    @Test func postsFromAnotherOriginAreRefused() async throws {
        let harness = try await ServerHarness()
        try await harness.app.test(.router) { client in
            let browser = Browser(client: client, harness: harness)
            let crossOrigin = try await browser.post("/vms/discover", "", origin: "http://evil.example", site: nil)
            #expect(crossOrigin.status == .forbidden)
            let crossSite = try await browser.post("/vms/discover", "", origin: nil, site: "cross-site")
            #expect(crossSite.status == .forbidden)
            #expect(Self.html(crossSite).contains("CrossSiteRequest"))
            #expect(try await harness.engine.jobs(JobFilter()).isEmpty, "a refused post must start nothing")
        }
    }

    @Test func valuesFromVMsAndErrorsAreEscaped() async throws {
        let harness = try await ServerHarness()
        let folder = harness.folder + "/fabric/prod/web01"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: folder + "/os.img", contents: Data(count: 4096))
        let json = #"{"disks": ["os.img"], "agentVersion": "<script>alert('x')</script>", "region": "local"}"#
        try Data(json.utf8).write(to: URL(fileURLWithPath: folder + "/vm.json"))
        try await harness.finish(try await harness.engine.discover().id)
        try await harness.app.test(.router) { client in
            let browser = Browser(client: client, harness: harness)
            let html = Self.html(try await browser.get("/vms"))
            #expect(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"))
            #expect(!html.contains("<script>alert"))
            let missing = try await browser.get("/jobs/%3Cb%3Ejob")
            #expect(missing.status == .notFound)
            #expect(!Self.html(missing).contains("<b>job"))
        }
    }

    @Test func seedFlowThroughTheForms() async throws {
        let harness = try await ServerHarness()
        try harness.addVM("web01", cloudService: "prod", disks: 2)
        try harness.addVM("web01", cloudService: "test")
        try await harness.app.test(.router) { client in
            let browser = Browser(client: client, harness: harness, role: .operator)
            try await harness.finish(try browser.jobID(from: try await browser.post("/vms/discover", "")))

            let registration = try await browser.post("/vms/register", "vm=prod%2Fweb01&vm=test%2Fweb01")
            #expect(registration.status == .ok)
            #expect(Self.html(registration).contains("2 jobs started"))
            for job in try await harness.engine.jobs(JobFilter(type: .register)) { try await harness.finish(job.id) }

            let policy = try await browser.post(
                "/policies", "name=daily-web&frequency=daily&time=21%3A30&timeZone=UTC&keepDays=14&keepWeeks=")
            #expect(policy.status == .seeOther)
            #expect(try await harness.engine.policy(named: "daily-web").schedule.summary == "daily 21:30 UTC")
            let invalid = try await browser.post("/policies", "name=bad&frequency=weekly&time=21%3A30&keepDays=14")
            #expect(invalid.status == .badRequest)
            #expect(Self.html(invalid).contains("InvalidSchedule"))
            // A policy that verifies its points on a schedule says so on the policies page.
            var verifying = try await harness.engine.policy(named: "daily-web")
            verifying.verification = VerificationPolicy(schedule: .weekly(on: [.sunday], at: TimeOfDay(hour: 4, minute: 0)),
                                                        checks: [.boot, .data])
            try await harness.engine.updatePolicy(verifying)
            let policies = Self.html(try await browser.get("/policies"))
            #expect(policies.contains(#"<td class="policy-verification">data,boot weekly sun 04:00 UTC</td>"#), "\(policies)")

            let protection = try await browser.post("/protected/protect", "vm=prod%2Fweb01&vm=test%2Fweb01&policy=daily-web")
            #expect(protection.status == .ok)
            for job in try await harness.engine.jobs(JobFilter(type: .configureProtection)) { try await harness.finish(job.id) }
            let pending = Self.html(try await browser.get("/"))
            #expect(pending.contains(#"<span id="count-pending">2</span>"#))

            let backup = try browser.jobID(from: try await browser.post("/protected/backup", "vm=prod%2Fweb01"))
            try await harness.finish(backup)
            let progress = try await browser.get("/ui/jobs/\(backup)/progress")
            let view = try JSONDecoder().decode(JobView.self, from: Data(String(buffer: progress.body).utf8))
            #expect(view.finished && view.status == "Succeeded" && view.percent == 100)
            #expect(view.steps.last?.name == "Commit recovery point")
            let jobPage = Self.html(try await browser.get("/jobs/\(backup)"))
            #expect(jobPage.contains("Transfer data") && !jobPage.contains(#"id="cancel-job""#))
            let lateCancel = try await browser.post("/jobs/\(backup)/cancel", "")
            #expect(lateCancel.status == .conflict)
            #expect(Self.html(lateCancel).contains("JobNotRunning"))

            let points = Self.html(try await browser.get("/vms/prod%2Fweb01/points"))
            #expect(points.contains("On demand"))
            #expect(points.contains(#"id="restore-form""#))
            let after = Self.html(try await browser.get("/"))
            #expect(after.contains(#"<span id="count-pending">1</span>"#))

            let point = try #require(try await harness.engine.points(of: "prod/web01").points.first)
            let folderRestore = try await browser.post("/vms/prod%2Fweb01/restore", "point=\(point.id)&destination=folder&folder=%2Ftmp%2Fx")
            #expect(folderRestore.status == .forbidden, "restoring into a server folder needs admin")
            let restore = try await browser.post("/vms/prod%2Fweb01/restore", "point=\(point.id)&destination=newVM&newName=web01-copy")
            try await harness.finish(try browser.jobID(from: restore))

            // Verify the point from its page: the outcome shows in its row and on the front page.
            #expect(points.contains(#"id="verify""#) && points.contains(#"<td class="verified">never</td>"#))
            let verify = try await browser.post("/vms/prod%2Fweb01/verify", "point=\(point.id)&check=data&bootCommand=")
            let verifyJob = try await harness.finish(try browser.jobID(from: verify))
            #expect(verifyJob.type == .verify && verifyJob.status == .succeeded)
            let verified = Self.html(try await browser.get("/vms/prod%2Fweb01/points"))
            #expect(verified.contains(#"data-verified="passed""#) && verified.contains("/jobs/\(verifyJob.id)"))
            let front = Self.html(try await browser.get("/"))
            #expect(front.contains(#"id="count-verified"><span class="count">1</span>"#))
            #expect(front.contains(#"id="count-verification-failed"><span class="count">0</span>"#))
            let noCheck = try await browser.post("/vms/prod%2Fweb01/verify", "point=\(point.id)&bootCommand=")
            #expect(noCheck.status == .badRequest && Self.html(noCheck).contains("InvalidArgument"))

            let failed = Self.html(try await browser.get("/jobs?status=Failed&since=24h"))
            #expect(failed.contains("No jobs."))
            let backups = Self.html(try await browser.get("/jobs?type=Backup&vm=prod%2Fweb01"))
            #expect(backups.contains(backup))
        }
    }
}
