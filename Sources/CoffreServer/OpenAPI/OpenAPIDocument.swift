/// The OpenAPI 3.1 document of the API, embedded at build time from `docs/openapi.json`
/// (`Sources/CoffreServer/OpenAPI/openapi.json` links to it): the repository's copy is the
/// one served, so it cannot go stale. `OpenAPITests` check it against the router's routes.
enum OpenAPIDocument {
    static let json = String(decoding: PackageResources.openapi_json, as: UTF8.self)
}
