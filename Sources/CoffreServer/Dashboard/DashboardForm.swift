import CoffreCore
import Foundation
import Hummingbird

/// The fields of an `application/x-www-form-urlencoded` body; a name may repeat (checkboxes).
struct DashboardForm {
    private var fields: [(name: String, value: String)] = []

    /// The most a dashboard form may send.
    static let maximumSize = 64 * 1024

    init(_ text: String) {
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.decode(parts[0])
            let value = parts.count > 1 ? Self.decode(parts[1]) : ""
            fields.append((name, value))
        }
    }

    /// Reads and parses a request's body.
    static func read(_ request: Request) async throws -> DashboardForm {
        var request = request
        let buffer = try await request.collectBody(upTo: maximumSize)
        return DashboardForm(String(buffer: buffer))
    }

    /// The first value of `name`, trimmed; nil when missing or blank.
    subscript(_ name: String) -> String? {
        guard let value = fields.first(where: { $0.name == name })?.value.trimmingCharacters(in: .whitespacesAndNewlines),
              !value.isEmpty
        else { return nil }
        return value
    }

    /// Every non-blank value of `name`, in order.
    func all(_ name: String) -> [String] {
        fields.filter { $0.name == name }.map { $0.value.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// A required field.
    func require(_ name: String, _ label: String) throws -> String {
        guard let value = self[name] else { throw CoffreError(.invalidForm, "\(label) is missing", workaround: "Fill in \(label.lowercased())") }
        return value
    }

    /// An optional whole number.
    func integer(_ name: String, _ label: String) throws -> Int? {
        guard let text = self[name] else { return nil }
        guard let value = Int(text) else { throw CoffreError(.invalidForm, "\(label) '\(text)' is not a whole number") }
        return value
    }

    private static func decode(_ text: Substring) -> String {
        let spaced = text.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }
}

/// Cross-site request forgery guard for cookie-authenticated form posts.
///
/// The session cookie is `SameSite=Strict`, so other sites' posts arrive without it; on top of
/// that a browser's post must say it comes from this origin (`Sec-Fetch-Site`, `Origin`).
/// Clients that send neither header are not browsers and authenticate with a bearer token.
enum SameOriginCheck {
    static func isSameOrigin(_ request: Request) -> Bool {
        if let site = request.headers[.secFetchSite], site != "same-origin", site != "none" {
            return false
        }
        if let origin = request.headers[.origin] {
            guard let host = request.head.authority else { return false }
            return origin == "http://" + host || origin == "https://" + host
        }
        return true
    }
}
