public import CoffreEngine
import Foundation
public import Hummingbird
import HummingbirdTLS
public import Logging
public import Prometheus
public import ServiceLifecycle
public import UnixSignals

/// Where and how the server listens, and what it reports.
public struct ServerConfiguration: Sendable {
    public var host: String
    /// 0 lets the system pick a free port; `onServerRunning` tells which.
    public var port: Int
    public var logger: Logger
    /// Called once the server listens, with the bound port.
    public var onServerRunning: @Sendable (Int) async -> Void
    /// The registry `/metrics` emits; pass the one the process's `MetricsSystem` uses to see
    /// what libraries report through swift-metrics there too.
    public var metricsRegistry: PrometheusCollectorRegistry
    /// Where folder restores requested by a relative path go; absolute paths need the admin role.
    public var restoreRoot: String
    /// HTTPS with this certificate; nil: plain HTTP.
    public var tls: ServerTLS?

    public init(
        host: String = "127.0.0.1", port: Int = 8080, logger: Logger = Logger(label: "coffre.server"),
        restoreRoot: String = FileManager.default.currentDirectoryPath + "/restores",
        metricsRegistry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        tls: ServerTLS? = nil,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.tls = tls
        self.host = host
        self.port = port
        self.logger = logger
        self.restoreRoot = restoreRoot
        self.metricsRegistry = metricsRegistry
        self.onServerRunning = onServerRunning
    }
}

/// What the API's handlers work with.
struct APIServices: Sendable {
    let engine: Engine
    let tokens: TokenStore
    let metrics: ServerMetrics
    let configuration: ServerConfiguration
}

/// Builds the server: the REST API under `/api/v1`, `/healthz`, `/metrics` and the dashboard.
/// The engine is not run here: run it beside the application in one `ServiceGroup`.
public func makeServerApplication(
    engine: Engine, tokens: TokenStore, configuration: ServerConfiguration
) throws -> some ApplicationProtocol {
    let router = makeRouter(engine: engine, tokens: tokens, configuration: configuration)
    return Application(
        router: router,
        server: try configuration.tls.map { try .tls(.http1(), tlsConfiguration: $0.serverConfiguration) } ?? .http1(),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "coffre"),
        onServerRunning: { channel in await configuration.onServerRunning(channel.localAddress?.port ?? 0) },
        logger: configuration.logger)
}

/// The engine and the server as one `ServiceGroup` (`coffre serve`): on a signal the server
/// stops first (no new jobs), then the engine cancels its running jobs, which end `Cancelled`.
public func makeServiceGroup(
    engine: Engine, tokens: TokenStore, configuration: ServerConfiguration,
    gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint]
) throws -> ServiceGroup {
    let server = try makeServerApplication(engine: engine, tokens: tokens, configuration: configuration)
    // Services shut down in reverse order: the server before the engine.
    return ServiceGroup(configuration: .init(
        services: [.init(service: engine), .init(service: server)],
        gracefulShutdownSignals: gracefulShutdownSignals,
        logger: configuration.logger))
}

/// The router alone (tests and `makeServerApplication`).
func makeRouter(engine: Engine, tokens: TokenStore, configuration: ServerConfiguration) -> Router<CoffreContext> {
    let services = APIServices(
        engine: engine, tokens: tokens,
        metrics: ServerMetrics(engine: engine, registry: configuration.metricsRegistry),
        configuration: configuration)
    let router = Router(context: CoffreContext.self)
    router.add(middleware: LogRequestsMiddleware(.info))
    router.add(middleware: RequestMetricsMiddleware(registry: configuration.metricsRegistry))
    router.add(middleware: ErrorMiddleware(logger: configuration.logger))
    router.add(middleware: AuthMiddleware(tokens: tokens))
    for route in APIRoutes.all {
        router.on(RouterPath(route.path), method: route.method) { request, context in
            try await route.respond(request, context, services)
        }
    }
    DashboardRoutes.register(on: router, engine: engine, tls: configuration.tls)
    return router
}
