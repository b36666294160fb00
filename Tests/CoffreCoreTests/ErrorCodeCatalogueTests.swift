import CoffreCore
import Foundation
import Testing

/// The catalogue of error codes is complete and every code is declared once.
struct ErrorCodeCatalogueTests {
    /// `Sources/CoffreCore/CoffreError+Codes.swift`, read from this test file's checkout.
    static let codesFile = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/CoffreCore/CoffreError+Codes.swift").path

    @Test func everyDeclaredCodeIsInTheCatalogue() throws {
        let source = try String(contentsOfFile: Self.codesFile, encoding: .utf8)
        let declaration = try Regex(#"public static let (\w+) = Self\("([^"]+)"\)"#)
        let declared = source.matches(of: declaration).map { String($0.output[2].substring!) }
        #expect(declared.count > 100, "the declarations were not found in \(Self.codesFile)")
        let catalogue = CoffreError.Code.catalogue.map(\.rawValue)
        #expect(Set(declared) == Set(catalogue), "declared but not catalogued: \(Set(declared).subtracting(catalogue)); catalogued twice or unknown: \(Set(catalogue).subtracting(declared))")
        #expect(catalogue.count == Set(catalogue).count, "a code is listed twice in the catalogue")
        #expect(declared.count == Set(declared).count, "two members declare the same code string")
    }

    @Test func codesKeepTheirWireForm() throws {
        // The strings are the contract (CLI output, API bodies, catalog rows): unchanged by typing.
        #expect(CoffreError.Code.vmNotFound.rawValue == "VMNotFound")
        #expect(CoffreError.Code.ioError.rawValue == "IOError")
        #expect(CoffreError.Code.nbdConnectionLost.rawValue == "NBDConnectionLost")
        let encoded = try JSONEncoder().encode(ErrorInfo(code: .pointNotFound, message: "m"))
        #expect(String(decoding: encoded, as: UTF8.self).contains(#""code":"PointNotFound""#))
        let decoded = try JSONDecoder().decode(ErrorInfo.self, from: Data(#"{"code":"FromTheFuture","message":"m"}"#.utf8))
        #expect(decoded.code.rawValue == "FromTheFuture" && !decoded.code.isKnown)
        #expect(CoffreError.Code.pointNotFound.isKnown)
    }

    @Test func anErrorKeepsItsCauseAndWhereItWasRaised() {
        struct Underlying: Error {}
        let error = CoffreError(.ioError, "disk on fire", workaround: "call someone", cause: Underlying())
        #expect(error.cause is Underlying)
        #expect(error.location.hasPrefix("CoffreCoreTests/ErrorCodeCatalogueTests.swift:"))
        #expect(error.description == "[IOError]: disk on fire. Workaround: call someone")
        #expect(error.diagnostic.contains("caused by: Underlying()"))
        // Users see code, message and workaround: two errors that differ only in cause are equal.
        #expect(error == CoffreError(.ioError, "disk on fire", workaround: "call someone"))
        #expect(error != CoffreError(.chunkMissing, "disk on fire", workaround: "call someone"))
    }
}
