import CoffreCore
import Foundation
import Hummingbird
import Mustache

/// Renders the dashboard's templates inside the layout and wraps them in responses with the
/// dashboard's security headers.
struct DashboardPages: Sendable {
    /// The portal's tabs, in order.
    enum Tab: String, CaseIterable {
        case overview, vms, protected, jobs, policies, nodes, about

        var label: String {
            switch self {
            case .overview: "Dashboard"
            case .vms: "Registered items"
            case .protected: "Protected items"
            case .jobs: "Jobs"
            case .policies: "Policies"
            case .nodes: "Nodes"
            case .about: "About"
            }
        }

        var href: String { self == .overview ? "/" : "/\(rawValue)" }
    }

    /// What the layout needs besides the page's own values (`body`).
    struct Frame {
        struct NavItem {
            var id: String
            var label: String
            var href: String
            var active: Bool
        }

        var title: String
        var signedIn: Bool
        var nav: [NavItem]
        var role: String
        var canOperate: Bool
        var isAdmin: Bool
        var notice: String?
        var body: Any
    }

    private let library: MustacheLibrary

    init() {
        var library = MustacheLibrary()
        for (name, text) in DashboardTemplates.all {
            do {
                try library.register(text, named: name)
            } catch {
                // The templates are constants checked by the dashboard tests.
                preconditionFailure("dashboard template \(name) does not parse: \(error)")
            }
        }
        self.library = library
    }

    /// A page of a signed-in caller.
    func page(_ template: String, title: String, tab: Tab?, role: Role?, notice: String? = nil,
              status: HTTPResponse.Status = .ok, body: Any) -> Response {
        let frame = Frame(
            title: title, signedIn: role != nil,
            nav: Tab.allCases.map { Frame.NavItem(id: $0.rawValue, label: $0.label, href: $0.href, active: $0 == tab) },
            role: role?.rawValue ?? "", canOperate: (role ?? .reader) >= .operator, isAdmin: role == .admin,
            notice: notice, body: body)
        return Self.html(library.render(frame, withTemplate: template) ?? "", status: status)
    }

    /// The error page: the seed's code, message and workaround, with the error's HTTP status.
    func error(_ error: ErrorView, status: HTTPResponse.Status, role: Role?, back: String) -> Response {
        struct Body {
            var code: String
            var message: String
            var workaround: String?
            var back: String
        }
        return page("error", title: "Something went wrong", tab: nil, role: role, status: status,
                    body: Body(code: error.code, message: error.message, workaround: error.workaround, back: back))
    }

    // MARK: Responses

    /// No inline script or style, nothing from elsewhere, no framing (clickjacking), and forms
    /// post only to this server.
    static let contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        + "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static var securityHeaders: HTTPFields {
        var headers = HTTPFields()
        headers[.contentSecurityPolicy] = contentSecurityPolicy
        headers[.xContentTypeOptions] = "nosniff"
        headers[.referrerPolicy] = "same-origin"
        headers[.xFrameOptions] = "DENY"
        return headers
    }

    /// 303 See Other: after a form post, the browser loads `location` with GET.
    static func redirect(_ location: String) -> Response {
        var headers = securityHeaders
        headers[.location] = location
        headers[.cacheControl] = "no-store"
        return Response(status: .seeOther, headers: headers)
    }
}

/// Header names HTTPTypes does not predefine.
extension HTTPFields.Element.Name {
    static let xContentTypeOptions = Self("X-Content-Type-Options")!
    static let referrerPolicy = Self("Referrer-Policy")!
    static let xFrameOptions = Self("X-Frame-Options")!
    static let secFetchSite = Self("Sec-Fetch-Site")!
}
