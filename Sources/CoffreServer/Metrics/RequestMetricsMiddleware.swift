import Foundation
import Hummingbird
import Prometheus

/// Counts HTTP requests and times them, by route (the router's pattern, so one series per
/// route, not per VM or job), method and status code, in the registry `/metrics` emits, with
/// the HELP texts and unit names Prometheus's lint asks for (Hummingbird's own middleware names
/// its counters without `_total` and has no HELP text).
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let registry: PrometheusCollectorRegistry

    static var requests: (String, String) { ("coffre_http_requests_total", "HTTP requests answered, by route, method and status code") }
    static var duration: (String, String) { ("coffre_http_request_duration_seconds", "How long HTTP requests took until their answer started, by route and method") }
    private static var buckets: [Duration] {
        [.milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5), .seconds(30)]
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            record(request, context, response.status, since: start)
            return response
        } catch {
            record(request, context, (error as? any HTTPResponseError)?.status ?? .internalServerError, since: start)
            throw error
        }
    }

    private func record(_ request: Request, _ context: Context, _ status: HTTPResponse.Status, since start: ContinuousClock.Instant) {
        let route = [("route", context.endpointPath ?? "unmatched"), ("method", request.method.rawValue)]
        registry.makeCounter(name: Self.requests.0, labels: route + [("code", String(status.code))], help: Self.requests.1)
            .increment()
        registry.makeDurationHistogram(name: Self.duration.0, labels: route, buckets: Self.buckets, help: Self.duration.1)
            .record(ContinuousClock.now - start)
    }
}
