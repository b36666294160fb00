import CoffreCore
import CoffreEngine
import Foundation
import Hummingbird

// The Dashboard tab and the Registered items tab: discovery and registration.
extension DashboardController {
    func overview(_ context: CoffreContext) async throws -> Response {
        struct JobCount {
            var label: String
            var count: Int
            var href: String
            var css: String
        }
        struct Body {
            var protectedVMs: Int
            var pendingInitialBackup: Int
            var stoppedProtection: Int
            var softDeleted: Int
            var jobCounts: [JobCount]
            var verificationsPassed: Int
            var verificationsFailed: Int
            var verifiedHref: String
            var verificationFailuresHref: String
            var storageChart: String
            var backupChart: String
            var jobs: [JobRow]
        }
        let numbers = try await engine.dashboard()
        let counts: [(JobStatus, Int)] = [
            (.queued, numbers.jobsQueued), (.inProgress, numbers.jobsInProgress), (.succeeded, numbers.jobsSucceeded),
            (.failed, numbers.jobsFailed), (.cancelled, numbers.jobsCancelled),
        ]
        let now = engine.clock.now()
        let latest = try await engine.jobs(JobFilter(limit: 8))
        let body = Body(
            protectedVMs: numbers.protectedVMs, pendingInitialBackup: numbers.pendingInitialBackup,
            stoppedProtection: numbers.stoppedProtection, softDeleted: numbers.softDeleted,
            jobCounts: counts.map { status, count in
                JobCount(label: status == .inProgress ? "In progress" : status.rawValue, count: count,
                         href: DashboardFormat.jobsHref(status: status, since: "24h"), css: DashboardFormat.css(status))
            },
            verificationsPassed: numbers.verificationsPassed, verificationsFailed: numbers.verificationsFailed,
            verifiedHref: DashboardFormat.jobsHref(type: .verify, status: .succeeded),
            verificationFailuresHref: DashboardFormat.jobsHref(type: .verify, status: .failed),
            storageChart: SVGCharts.storage(try await engine.storageHistory(days: 30), days: 30, now: now),
            backupChart: SVGCharts.backups(try await engine.backupDays(days: 30)),
            jobs: latest.map { JobRow($0, now: now) })
        return pages.page("overview", title: "Dashboard", tab: .overview, role: context.role, body: body)
    }

    func vms(_ context: CoffreContext) async throws -> Response {
        struct Row {
            var key: String
            var name: String
            var cloudService: String
            var fabric: String
            var region: String
            var power: String
            var agent: String
            var disks: String
            var vanished: Bool
            var registration: String
            var registrationCss: String
            var registrable: Bool
            var error: ErrorView?
        }
        struct Body {
            var vms: [Row]
            var anyRegistrable: Bool
        }
        let offered = Set(try await engine.vms(unregistered: true).map(\.key))
        let rows = try await engine.vms().sorted { $0.key < $1.key }.map { record in
            let vm = record.vm
            let size = vm.disks.reduce(0) { $0 + $1.size }
            return Row(
                key: record.key.description, name: vm.name, cloudService: vm.cloudService, fabric: record.fabric,
                region: vm.region, power: vm.powerState.rawValue, agent: vm.agentVersion ?? "none",
                disks: "\(vm.disks.count) (\(vm.dataDiskCount) data) · \(ByteSize.format(size))",
                vanished: record.presence == .vanished, registration: DashboardFormat.registration(record.registration),
                registrationCss: record.registration.rawValue, registrable: offered.contains(record.key),
                error: record.registration == .failed ? record.registrationError.map(ErrorView.init) : nil)
        }
        return pages.page("vms", title: "Registered items", tab: .vms, role: context.role,
                          body: Body(vms: rows, anyRegistrable: rows.contains(where: \.registrable)))
    }

    func discover() async throws -> Response {
        DashboardPages.redirect(DashboardFormat.jobHref(try await engine.discover().id))
    }

    func register(_ form: DashboardForm, _ context: CoffreContext) async throws -> Response {
        let names = form.all("vm")
        guard !names.isEmpty else {
            throw CoffreError(.invalidForm, "No VM was selected", workaround: "Tick the VMs to register")
        }
        return started(await engine.register(names), title: "Registration", back: .vms, context)
    }

    /// The jobs a bulk operation started, with live status, and the VMs it could not start for.
    func started(_ result: BulkResult, title: String, back: DashboardPages.Tab, _ context: CoffreContext) -> Response {
        struct Failure {
            var vm: String
            var code: String
            var message: String
            var workaround: String?
        }
        struct Body {
            var jobs: [JobRow]
            var hasJobs: Bool
            var errors: [Failure]
            var hasErrors: Bool
            var back: String
            var backLabel: String
        }
        let now = engine.clock.now()
        let failures = result.errors.map { Failure(vm: $0.vm, code: $0.error.code.rawValue, message: $0.error.message, workaround: $0.error.workaround) }
        let status: HTTPResponse.Status = result.jobs.isEmpty ? result.errors.first.map { APIError.status(of: $0.error.code) } ?? .badRequest : .ok
        let notice = "\(result.jobs.count) job\(result.jobs.count == 1 ? "" : "s") started"
            + (failures.isEmpty ? "" : ", \(failures.count) not started")
        return pages.page("started", title: title, tab: back, role: context.role, notice: notice, status: status,
                          body: Body(jobs: result.jobs.map { JobRow($0, now: now) }, hasJobs: !result.jobs.isEmpty,
                                     errors: failures, hasErrors: !failures.isEmpty, back: back.href, backLabel: back.label))
    }
}
