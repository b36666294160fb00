@testable import CoffreServer
import Foundation
import Testing

/// docs/openapi.json describes exactly the routes the router serves, and the server serves
/// that very file.
@Suite struct OpenAPITests {
    static let documentPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/openapi.json").path

    static func document() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: documentPath))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test func routesMatchTheRouterBothWays() throws {
        let document = try Self.document()
        #expect(document["openapi"] as? String == "3.1.0")
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        let methods: Set<String> = ["get", "post", "put", "delete", "patch"]
        var documented: Set<String> = []
        for (path, operations) in paths {
            for method in operations.keys where methods.contains(method) { documented.insert("\(method.uppercased()) \(path)") }
        }
        let served = Set(APIRoutes.all.map(\.key))
        #expect(documented.subtracting(served).isEmpty, "documented but not served: \(documented.subtracting(served).sorted())")
        #expect(served.subtracting(documented).isEmpty, "served but not documented: \(served.subtracting(documented).sorted())")
    }

    @Test func securityMatchesRoles() throws {
        let paths = try #require(try Self.document()["paths"] as? [String: [String: [String: Any]]])
        for route in APIRoutes.all {
            let operation = try #require(paths[route.path]?[route.method.rawValue.lowercased()])
            let security = operation["security"] as? [Any]
            if route.role == nil {
                #expect(security?.isEmpty == true, "\(route.key) is public")
            } else {
                #expect(security == nil, "\(route.key) needs the document's bearer security")
                #expect((operation["x-coffre-role"] as? String) == route.role?.rawValue, "\(route.key)")
                #expect((operation["responses"] as? [String: Any])?["401"] != nil, "\(route.key)")
            }
        }
    }

    @Test func theServerServesTheRepositoryCopy() throws {
        let file = try String(contentsOfFile: Self.documentPath, encoding: .utf8)
        #expect(OpenAPIDocument.json == file, "the embedded document differs from docs/openapi.json: rebuild")
    }
}
