import CoffreCore
import Foundation
import Hummingbird

/// The dashboard's sign-in: the pasted API token is kept in an HttpOnly, SameSite=Strict cookie
/// that the auth middleware reads like a bearer token.
enum DashboardSession {
    static let cookieName = "coffre_token"

    /// - Parameter secure: the server speaks HTTPS: the browser never sends the cookie over plain HTTP.
    static func cookie(_ token: String, secure: Bool) -> Cookie {
        Cookie(name: cookieName, value: token, path: "/", secure: secure, httpOnly: true, sameSite: .strict)
    }

    static var expiredCookie: Cookie {
        Cookie(name: cookieName, value: "", maxAge: 0, path: "/", httpOnly: true, sameSite: .strict)
    }

    /// Whether `token` can be a cookie value as it is (tokens are URL-safe text).
    static func isPlausible(_ token: String) -> Bool {
        (8...512).contains(token.utf8.count) && token.utf8.allSatisfy { c in
            (0x30...0x39).contains(c) || (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c) || "-._~+/=".utf8.contains(c)
        }
    }
}

extension DashboardController {
    @Sendable func loginPage(_ request: Request, _ context: CoffreContext) async throws -> Response {
        struct Body {
            var next: String
            var invalid: Bool
        }
        let next = request.uri.queryParameters["next"].map(String.init).flatMap(Self.localPath) ?? "/"
        return pages.page("login", title: "Sign in", tab: nil, role: nil,
                          body: Body(next: next, invalid: request.uri.queryParameters["invalid"] != nil))
    }

    /// Sets the cookie and goes on; an unknown token comes back to `/login?invalid=1` from the next page.
    @Sendable func login(_ request: Request, _ context: CoffreContext) async throws -> Response {
        guard SameOriginCheck.isSameOrigin(request) else {
            return pages.error(ErrorView(code: .crossSiteRequest, message: "This sign-in was not sent from the Coffre dashboard",
                                         workaround: nil), status: .forbidden, role: nil, back: "/login")
        }
        let form = try await DashboardForm.read(request)
        let next = form["next"].flatMap(Self.localPath) ?? "/"
        guard let token = form["token"], DashboardSession.isPlausible(token) else {
            return DashboardPages.redirect("/login?invalid=1&next=" + DashboardFormat.segment(next))
        }
        var response = DashboardPages.redirect(next)
        response.setCookie(DashboardSession.cookie(token, secure: tls != nil))
        return response
    }

    @Sendable func logout(_ request: Request, _ context: CoffreContext) async throws -> Response {
        guard SameOriginCheck.isSameOrigin(request) else { return DashboardPages.redirect("/") }
        var response = DashboardPages.redirect("/login")
        response.setCookie(DashboardSession.expiredCookie)
        return response
    }
}
