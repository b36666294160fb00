import CoffreCore
import CoffreTesting
import Testing

/// `CoffreTesting`'s catalog conformance suite on every backend: memory, SQLite and (when
/// scripts/pg-harness is up, always in CI) PostgreSQL.
@Suite struct CatalogConformanceTests {
    @Test(arguments: Backend.allCases, CatalogConformance.names)
    func conformance(_ backend: Backend, _ check: String) async throws {
        try await backend.withCatalog { catalog throws in
            try await CatalogConformance.run(check, on: catalog)
        }
    }
}

/// The conformance suite's sample records, for this target's own tests too.
typealias Sample = CatalogSample
