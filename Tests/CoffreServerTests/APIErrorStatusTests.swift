import CoffreCore
@testable import CoffreServer
import Hummingbird
import Testing

/// The API's status table covers every error code, each once: no code answers by default.
struct APIErrorStatusTests {
    @Test func everyCodeOfTheCatalogueHasAStatus() {
        let missing = CoffreError.Code.catalogue.filter { APIError.statusByCode[$0] == nil }
        #expect(missing.isEmpty, "codes without an HTTP status: \(missing.map(\.rawValue))")
    }

    @Test func noCodeIsListedTwice() {
        var seen: [CoffreError.Code: HTTPResponse.Status] = [:]
        for (status, codes) in APIError.statusGroups {
            for code in codes {
                #expect(seen[code] == nil, "\(code) is listed under \(seen[code].map { "\($0.code)" } ?? "") and \(status.code)")
                seen[code] = status
            }
        }
        #expect(Set(seen.keys).isSubset(of: Set(CoffreError.Code.catalogue)), "the table names codes the catalogue lacks")
    }

    @Test func statusesSayWhoseFaultItIs() {
        #expect(APIError.status(of: .vmNotFound) == .notFound)
        #expect(APIError.status(of: .anotherOperationInProgress) == .conflict)
        #expect(APIError.status(of: .invalidSchedule) == .badRequest)
        #expect(APIError.status(of: .chunkDamaged) == .internalServerError)
        #expect(APIError.status(of: .fabricUnreachable) == .badGateway)
        #expect(APIError.status(of: .snapshotTimeout) == .gatewayTimeout)
        // A code this version does not know (a newer guest's report) is the server's failure.
        #expect(APIError.status(of: CoffreError.Code(rawValue: "FromTheFuture")) == .internalServerError)
    }
}
