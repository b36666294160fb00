import CoffreCore
import CoffreEngine
import Foundation
import Hummingbird

/// The web dashboard (issue 5, item 5): the portal's tabs as server-rendered pages, form
/// posts that call the engine, and one JSON endpoint for live job progress.
enum DashboardRoutes {
    /// Adds the dashboard's pages, actions and static assets to `router`.
    ///
    /// Pages need the reader role, actions the operator role (restoring into a server folder:
    /// admin). A browser without a valid `coffre_token` cookie is sent to `/login`.
    static func register(on router: Router<CoffreContext>, engine: Engine, tls: ServerTLS? = nil) {
        let dashboard = DashboardController(engine: engine, pages: DashboardPages(), tls: tls)
        router.get("/login", use: dashboard.loginPage)
        router.post("/login", use: dashboard.login)
        router.post("/logout", use: dashboard.logout)

        router.get("/") { request, context in
            await dashboard.guarded(request, context, tab: .overview) { try await dashboard.overview(context) }
        }
        router.get("/vms") { request, context in
            await dashboard.guarded(request, context, tab: .vms) { try await dashboard.vms(context) }
        }
        router.post("/vms/discover") { request, context in
            await dashboard.guarded(request, context, tab: .vms, needs: .operator) { try await dashboard.discover() }
        }
        router.post("/vms/register") { request, context in
            await dashboard.guarded(request, context, tab: .vms, needs: .operator) {
                try await dashboard.register(try await DashboardForm.read(request), context)
            }
        }
        router.get("/vms/:vm/points") { request, context in
            await dashboard.guarded(request, context, tab: .protected) {
                try await dashboard.points(try context.vmParameter(), context)
            }
        }
        router.get("/vms/:vm/points/:point/files") { request, context in
            await dashboard.guarded(request, context, tab: .protected, needs: .operator) {
                try await dashboard.files(try context.vmParameter(), point: try context.parameters.require("point"), request, context)
            }
        }
        router.get("/vms/:vm/points/:point/files/download") { request, context in
            await dashboard.guarded(request, context, tab: .protected, needs: .operator) {
                try await dashboard.downloadFile(try context.vmParameter(), point: try context.parameters.require("point"), request)
            }
        }
        router.post("/vms/:vm/restore") { request, context in
            await dashboard.guarded(request, context, tab: .protected, needs: .operator) {
                try await dashboard.restore(try context.vmParameter(), try await DashboardForm.read(request), context)
            }
        }
        router.post("/vms/:vm/verify") { request, context in
            await dashboard.guarded(request, context, tab: .protected, needs: .operator) {
                try await dashboard.verify(try context.vmParameter(), try await DashboardForm.read(request), context)
            }
        }
        router.get("/protected") { request, context in
            await dashboard.guarded(request, context, tab: .protected) { try await dashboard.protected(context) }
        }
        router.post("/protected/protect") { request, context in
            await dashboard.guarded(request, context, tab: .protected, needs: .operator) {
                try await dashboard.protect(try await DashboardForm.read(request), context)
            }
        }
        router.post("/protected/backup") { request, context in
            await dashboard.guarded(request, context, tab: .protected, needs: .operator) {
                try await dashboard.backupNow(try await DashboardForm.read(request))
            }
        }
        router.get("/nodes") { request, context in
            await dashboard.guarded(request, context, tab: .nodes) { try await dashboard.nodes(context) }
        }
        router.get("/about") { request, context in
            await dashboard.guarded(request, context, tab: .about) { dashboard.about(context) }
        }
        router.get("/policies") { request, context in
            await dashboard.guarded(request, context, tab: .policies) { try await dashboard.policies(context) }
        }
        router.post("/policies") { request, context in
            await dashboard.guarded(request, context, tab: .policies, needs: .operator) {
                try await dashboard.createPolicy(try await DashboardForm.read(request))
            }
        }
        router.get("/jobs") { request, context in
            await dashboard.guarded(request, context, tab: .jobs) { try await dashboard.jobs(request, context) }
        }
        router.get("/jobs/:id") { request, context in
            await dashboard.guarded(request, context, tab: .jobs) {
                try await dashboard.job(try context.parameters.require("id"), context)
            }
        }
        router.post("/jobs/:id/cancel") { request, context in
            await dashboard.guarded(request, context, tab: .jobs, needs: .operator) {
                try await dashboard.cancel(try context.parameters.require("id"))
            }
        }
        router.get("/ui/jobs/:id/progress") { _, context in
            try await dashboard.progress(try context.parameters.require("id"), context)
        }
        DashboardAssets.register(on: router)
    }
}

/// The dashboard's handlers; one extension per tab.
struct DashboardController: Sendable {
    let engine: Engine
    let pages: DashboardPages
    /// The certificate the server answers HTTPS with (the About page shows its fingerprint).
    var tls: ServerTLS?

    /// Runs a page or an action for a signed-in caller.
    ///
    /// Without a valid token a browser is sent to `/login` (and a stale cookie is cleared); a
    /// role below `needs` gets a 403 page; a post from another origin is refused (CSRF). Engine
    /// errors become the error page with their code, message, workaround and HTTP status.
    func guarded(
        _ request: Request, _ context: CoffreContext, tab: DashboardPages.Tab, needs role: Role = .reader,
        _ body: () async throws -> Response
    ) async -> Response {
        guard let current = context.role else { return signInFirst(request) }
        let back = request.method == .get ? tab.href : (request.headers[.referer].flatMap(Self.localPath) ?? tab.href)
        guard current >= role else {
            return pages.error(ErrorView(APIError.forbidden(needs: role, has: current).body), status: .forbidden,
                               role: current, back: back)
        }
        if request.method == .post, !SameOriginCheck.isSameOrigin(request) {
            return pages.error(ErrorView(code: .crossSiteRequest, message: "This form was not sent from the Coffre dashboard",
                                         workaround: "Open the dashboard and submit the form again"),
                               status: .forbidden, role: current, back: back)
        }
        do {
            return try await body()
        } catch let error as CoffreError {
            return pages.error(ErrorView(code: error.code, message: error.message, workaround: error.workaround),
                               status: APIError.status(of: error.code), role: current, back: back)
        } catch let error as APIError {
            return pages.error(ErrorView(error.body), status: error.status, role: current, back: back)
        } catch let error as HTTPError {
            return pages.error(ErrorView(code: .badRequest, message: error.body ?? "\(error.status)", workaround: nil),
                               status: error.status, role: current, back: back)
        } catch {
            return pages.error(ErrorView(code: .internalError, message: String(describing: error),
                                         workaround: "Retry; if it fails again, report it with the server's log"),
                               status: .internalServerError, role: current, back: back)
        }
    }

    private func signInFirst(_ request: Request) -> Response {
        let next = request.method == .get ? request.uri.description : "/"
        var location = "/login?next=" + DashboardFormat.segment(next)
        var response = DashboardPages.redirect(location)
        if request.cookies[DashboardSession.cookieName] != nil {
            // The cookie's token is unknown or revoked: say so, and drop it.
            location += "&invalid=1"
            response = DashboardPages.redirect(location)
            response.setCookie(DashboardSession.expiredCookie)
        }
        return response
    }

    /// `path` when it names a page of this server (never another host: no open redirect).
    static func localPath(_ text: String) -> String? {
        var path = text
        if let url = URL(string: text), url.scheme != nil {
            path = url.path + (url.query.map { "?" + $0 } ?? "")
        }
        guard path.hasPrefix("/"), !path.hasPrefix("//"), !path.hasPrefix("/\\") else { return nil }
        return path
    }
}

extension ErrorView {
    init(_ body: APIError.Body) {
        self.init(code: body.code, message: body.message, workaround: body.workaround)
    }
}

extension CoffreContext {
    /// The `:vm` path segment: a VM key `cloudService/name`, percent-encoded as one segment.
    func vmParameter() throws -> String {
        let raw = try parameters.require("vm")
        return raw.removingPercentEncoding ?? raw
    }
}
