import CoffreCore
import CoffreEngine
import Foundation
import Hummingbird

// The Protected items, Policies and Nodes tabs, recovery points and restore.
extension DashboardController {
    func protected(_ context: CoffreContext) async throws -> Response {
        struct Row {
            var vm: String
            var policy: String
            var status: String
            var stateCss: String
            var lastBackup: String
            var consistency: String
            var pointCount: Int
            var pointsHref: String
            var canBackup: Bool
        }
        struct Body {
            var items: [Row]
            var protectable: Bool
            var candidates: [String]
            var hasPolicies: Bool
            var policies: [String]
            var hasItems: Bool
            var storageChart: String
        }
        let summaries = try await engine.itemSummaries().sorted { $0.item.vm < $1.item.vm }
        let rows = summaries.map { summary in
            let item = summary.item
            let pending = item.state == .protected && summary.pointCount == 0
            return Row(
                vm: item.vm.description, policy: item.policy, status: summary.status,
                stateCss: pending ? "pending" : item.state.rawValue,
                lastBackup: summary.lastPoint.map { DashboardFormat.instant($0.takenAt) } ?? "—",
                consistency: summary.lastPoint.map { DashboardFormat.consistency($0.consistency) } ?? "—",
                pointCount: summary.pointCount, pointsHref: DashboardFormat.pointsHref(item.vm),
                canBackup: item.state == .protected || item.state == .configuring)
        }
        let covered = Set(summaries.map(\.item.vm))
        let candidates = try await engine.vms()
            .filter { $0.registration == .registered && $0.presence == .present && !covered.contains($0.key) }
            .map(\.key).sorted().map(\.description)
        let policies = try await engine.policies().map(\.name).sorted()
        return pages.page("protected", title: "Protected items", tab: .protected, role: context.role,
                          body: Body(items: rows, protectable: !candidates.isEmpty, candidates: candidates,
                                     hasPolicies: !policies.isEmpty, policies: policies, hasItems: !rows.isEmpty,
                                     storageChart: rows.isEmpty ? "" : SVGCharts.itemStorage(try await engine.itemStorage())))
    }

    func protect(_ form: DashboardForm, _ context: CoffreContext) async throws -> Response {
        let names = form.all("vm")
        guard !names.isEmpty else {
            throw CoffreError(.invalidForm, "No VM was selected", workaround: "Tick the VMs to protect")
        }
        let policy = try form.require("policy", "The policy")
        return started(await engine.protect(names, policy: policy), title: "Protection", back: .protected, context)
    }

    func backupNow(_ form: DashboardForm) async throws -> Response {
        let job = try await engine.backupNow(try form.require("vm", "The VM"))
        return DashboardPages.redirect(DashboardFormat.jobHref(job.id))
    }

    // MARK: Nodes

    /// The nodes sharing the catalog (one, on SQLite): who leads, who is alive, what they run.
    func nodes(_ context: CoffreContext) async throws -> Response {
        struct Row {
            var id: String
            var address: String
            var version: String
            var heartbeat: String
            var state: String
            var alive: Bool
            var leader: Bool
            var runningJobs: Int
        }
        struct Body { var nodes: [Row] }
        let rows = try await engine.nodes().map { node in
            Row(id: node.id, address: node.address.isEmpty ? "—" : node.address, version: node.version,
                heartbeat: DashboardFormat.instant(node.lastHeartbeat),
                state: node.alive ? "alive" : "silent", alive: node.alive, leader: node.leader, runningJobs: node.runningJobs)
        }
        return pages.page("nodes", title: "Nodes", tab: .nodes, role: context.role, body: Body(nodes: rows))
    }

    // MARK: About

    func about(_ context: CoffreContext) -> Response {
        struct Certificate { var file: String; var fingerprint: String; var notValidAfter: String }
        struct Body { var version: String; var node: String; var tls: Certificate? }
        let body = Body(
            version: engine.configuration.version, node: engine.owner,
            tls: tls.map { Certificate(file: $0.certificateFile, fingerprint: $0.fingerprint,
                                       notValidAfter: DashboardFormat.instant($0.notValidAfter)) })
        return pages.page("about", title: "About", tab: .about, role: context.role, body: body)
    }

    // MARK: Policies

    func policies(_ context: CoffreContext) async throws -> Response {
        struct Row {
            var name: String
            var schedule: String
            var retention: String
            var verification: String
            var nextRun: String
            var items: Int
        }
        struct Body {
            var policies: [Row]
            var weekdays: [OptionView]
        }
        let items = try await engine.itemSummaries()
        let now = engine.clock.now()
        let rows = try await engine.policies().sorted { $0.name < $1.name }.map { policy in
            Row(name: policy.name, schedule: policy.schedule.summary, retention: policy.retention.summary,
                verification: policy.verification?.summary ?? "none",
                nextRun: policy.schedule.nextSlot(after: now).map(DashboardFormat.instant) ?? "—",
                items: items.filter { $0.item.policy == policy.name }.count)
        }
        let weekdays = Weekday.allCases.map { OptionView(value: $0.rawValue, label: String($0.rawValue.prefix(3)).capitalized) }
        return pages.page("policies", title: "Policies", tab: .policies, role: context.role,
                          body: Body(policies: rows, weekdays: weekdays))
    }

    func createPolicy(_ form: DashboardForm) async throws -> Response {
        let time = try TimeOfDay(parsing: try form.require("time", "The time of day"))
        let zone = form["timeZone"] ?? "UTC"
        let schedule: Schedule = switch form["frequency"] {
        case "weekly": .weekly(on: try form.all("weekday").map { try Weekday(parsing: $0) }, at: time, timeZone: zone)
        default: .daily(at: time, timeZone: zone)
        }
        guard let days = try form.integer("keepDays", "Days to keep") else {
            throw CoffreError.invalidRetention("give the number of days to keep every point")
        }
        let retention = Retention(days: days, weeks: try form.integer("keepWeeks", "Weeks"),
                                  months: try form.integer("keepMonths", "Months"), years: try form.integer("keepYears", "Years"))
        let policy = Policy(name: try form.require("name", "The policy's name"), schedule: schedule, retention: retention)
        try await engine.createPolicy(policy)
        return DashboardPages.redirect("/policies")
    }

    // MARK: Recovery points and restore

    func points(_ vm: String, _ context: CoffreContext) async throws -> Response {
        struct Row {
            var id: String
            var taken: String
            var type: String
            var tags: [String]
            var consistency: String
            var reason: String
            var expires: String
            var blocksAdded: Int
            var blocksOnlyHere: Int
            var freedIfExpired: String
            var newest: Bool
            var filesHref: String
            var verification: Verification?
        }
        struct Verification {
            var outcome: String
            var label: String
            var css: String
            var when: String
            var checks: String
            var detail: String
            var jobHref: String
        }
        struct Body {
            var policy: String
            var state: String
            var jobsHref: String
            var restoreHref: String
            var verifyHref: String
            var points: [Row]
            var hasPoints: Bool
            var suggestedName: String
            var timelineChart: String
            var runsChart: String
        }
        let (item, points, accounting) = try await engine.points(of: vm)
        let newestID = points.last?.id
        // Newest first, as a person looks for the latest point.
        let rows = points.reversed().map { point in
            let counted = accounting[point.id]
            return Row(
                id: point.id, taken: DashboardFormat.instant(point.takenAt),
                type: point.type == .onDemand ? "On demand" : "Scheduled", tags: point.tags.map(\.rawValue),
                consistency: DashboardFormat.consistency(point.consistency), reason: point.guest.reason,
                expires: point.expiresAt.map(DashboardFormat.instant) ?? "never",
                blocksAdded: counted?.blocksAdded ?? point.stats.blocksAdded, blocksOnlyHere: counted?.blocksOnlyHere ?? 0,
                freedIfExpired: ByteSize.format(counted?.bytesFreedIfExpired ?? 0), newest: point.id == newestID,
                filesHref: DashboardFormat.pointsHref(item.vm) + "/" + DashboardFormat.segment(point.id) + "/files",
                verification: point.verification.map { v in
                    Verification(outcome: v.succeeded ? "passed" : "failed", label: v.succeeded ? "Passed" : "Failed",
                                 css: DashboardFormat.css(v.succeeded ? .succeeded : .failed), when: DashboardFormat.instant(v.at),
                                 checks: v.checks.map(\.rawValue).joined(separator: ", "),
                                 detail: v.error.map { "\($0.code.rawValue): \($0.message)" } ?? v.detail,
                                 jobHref: DashboardFormat.jobHref(v.job))
                })
        }
        let state = try await engine.itemSummaries().first { $0.item.id == item.id }?.status ?? item.state.rawValue
        let history = try await engine.itemHistory(of: item.vm.description, days: 30)
        let body = Body(
            policy: item.policy, state: state, jobsHref: DashboardFormat.jobsHref(vm: item.vm),
            restoreHref: DashboardFormat.restoreHref(item.vm),
            verifyHref: DashboardFormat.verifyHref(item.vm), points: rows, hasPoints: !rows.isEmpty,
            suggestedName: item.vm.name + "-restored",
            timelineChart: SVGCharts.timeline(history), runsChart: SVGCharts.runs(history))
        return pages.page("points", title: "Recovery points of \(item.vm)", tab: .protected, role: context.role, body: body)
    }

    /// Restores as a new VM (operator), or into a folder of the server (admin: it writes files
    /// wherever the server may). Replacing the VM's own disks is left to the CLI and the API.
    func restore(_ vm: String, _ form: DashboardForm, _ context: CoffreContext) async throws -> Response {
        let point = try form.require("point", "The recovery point")
        let destination: RestoreDestination
        switch form["destination"] {
        case "folder":
            try context.require(.admin)
            let folder = try form.require("folder", "The folder")
            guard folder.hasPrefix("/") else {
                throw CoffreError(.invalidRestoreTarget, "The folder must be an absolute path on the server", workaround: "Start it with /")
            }
            destination = .folder(folder, format: try DiskFormat(parsing: form["format"] ?? "raw"))
        default:
            let name = try form.require("newName", "The new VM's name")
            destination = form["instant"] == "yes" ? .instant(name: name) : .newVM(name: name)
        }
        let job = try await engine.restore(vm, point: point, to: destination)
        return DashboardPages.redirect(DashboardFormat.jobHref(job.id))
    }

    /// Verifies the selected point with the checks ticked (operator).
    func verify(_ vm: String, _ form: DashboardForm, _ context: CoffreContext) async throws -> Response {
        let point = try form.require("point", "The recovery point")
        let command = form["bootCommand"].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
        let request = Engine.VerificationRequest(checks: try form.all("check").map(VerificationCheck.init(parsing:)),
                                                 bootCommand: command)
        let job = try await engine.verify(vm, point: point, request)
        return DashboardPages.redirect(DashboardFormat.jobHref(job.id))
    }
}
