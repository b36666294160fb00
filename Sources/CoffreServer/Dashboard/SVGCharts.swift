import CoffreCore
import CoffreEngine
import Foundation

/// The dashboard's charts (issue 19), drawn by the server as inline SVG from the values the
/// history API returns: no script, no external asset, no inline style (the CSP forbids them;
/// colours come from the stylesheet's classes). Every chart is a `<figure>` with a visible
/// caption, axes labelled with units, marks that carry their values in `data-` attributes and
/// a `<title>` (a tooltip), and a table of the same values for screen readers.
enum SVGCharts {
    /// The drawing area inside the SVG's view box.
    struct Plot {
        var width = 720.0
        var height = 200.0
        var left = 72.0
        var right = 16.0
        var top = 12.0
        var bottom = 34.0
        var innerWidth: Double { width - left - right }
        var innerHeight: Double { height - top - bottom }
        var baseline: Double { height - bottom }

        /// `y` of `value` on a scale from 0 to `max`.
        func y(_ value: Double, max: Double) -> Double {
            baseline - (max > 0 ? value / max * innerHeight : 0)
        }
    }

    // MARK: The dashboard

    /// Stored bytes against logical bytes, one mark per daily sample.
    static func storage(_ history: StorageHistory, days: Int, now: Date) -> String {
        let plot = Plot()
        let first = now.addingTimeInterval(-Double(days - 1) * 86_400)
        let dayList = (0..<days).map { VaultSample.day(of: first.addingTimeInterval(Double($0) * 86_400)) }
        let step = plot.innerWidth / Double(max(1, days - 1))
        func x(_ day: String) -> Double { plot.left + Double(dayList.firstIndex(of: day) ?? 0) * step }
        let top = niceBytes(Double(history.samples.map { max($0.storedBytes, $0.logicalBytes) }.max() ?? 0))
        var marks = ""
        for (series, value) in [("logical", \VaultSample.logicalBytes), ("stored", \VaultSample.storedBytes)] {
            let points = history.samples.map { (x($0.day), plot.y(Double($0[keyPath: value]), max: top)) }
            if points.count > 1 {
                marks += "<polyline class=\"line series-\(series)\" points=\"\(points.map { "\(fmt($0.0)),\(fmt($0.1))" }.joined(separator: " "))\"/>"
            }
            for (sample, point) in zip(history.samples, points) {
                let bytes = sample[keyPath: value]
                marks += "<circle class=\"dot series-\(series)\" cx=\"\(fmt(point.0))\" cy=\"\(fmt(point.1))\" r=\"4\" data-series=\"\(series)\" data-day=\"\(sample.day)\" data-bytes=\"\(bytes)\"><title>\(series == "stored" ? "Stored" : "Logical") \(sample.day): \(ByteSize.format(bytes))</title></circle>"
            }
        }
        let saving = history.samples.last.map { last in
            // Nothing to compare before the first point (or with an empty store).
            last.storedBytes > 0 && last.logicalBytes > 0
                ? String(format: "%.1f×", Double(last.logicalBytes) / Double(last.storedBytes)) : "—"
        } ?? "—"
        func growth(_ value: Int64?) -> String { value.map { ($0 < 0 ? "−" : "+") + ByteSize.format(abs($0)) } ?? "not yet known" }
        let caption = "Vault: stored against logical bytes, last \(days) days"
        let summary = "<p class=\"chart-summary\"><span id=\"storage-saving\">Saving (logical ÷ stored): \(saving)</span> · "
            + "<span id=\"storage-growth-7\" data-bytes=\"\(history.growth7Days.map(String.init) ?? "")\">growth over 7 days: \(growth(history.growth7Days))</span> · "
            + "<span id=\"storage-growth-30\" data-bytes=\"\(history.growth30Days.map(String.init) ?? "")\">over 30 days: \(growth(history.growth30Days))</span></p>"
        let legend = legendHTML([("series-logical", "Logical (what the points represent)"), ("series-stored", "Stored (after deduplication and compression)")])
        let table = tableHTML(caption: caption, headers: ["Day", "Stored", "Logical"],
                              rows: history.samples.map { [$0.day, ByteSize.format($0.storedBytes), ByteSize.format($0.logicalBytes)] })
        return figure(id: "chart-storage", caption: caption, extra: summary + legend,
                      svg: svg(plot, label: caption, body: yAxis(plot, max: top, unit: .bytes) + xAxis(plot, labels: dayLabels(dayList, x: x)) + marks),
                      table: history.samples.isEmpty ? "<p class=\"hint\">No sample yet: the vault is measured after backups and hourly.</p>" : table)
    }

    /// Backup jobs per day, stacked by outcome; each day links to its jobs.
    static func backups(_ days: [JobDay]) -> String {
        let plot = Plot()
        let top = niceCount(Double(days.map(\.total).max() ?? 0))
        let slot = plot.innerWidth / Double(max(1, days.count))
        let width = max(2, slot * 0.7)
        var marks = ""
        var labels: [(Double, String)] = []
        for (index, day) in days.enumerated() {
            let x = plot.left + Double(index) * slot + (slot - width) / 2
            var y = plot.baseline
            var bars = "<rect class=\"hit\" x=\"\(fmt(plot.left + Double(index) * slot))\" y=\"\(fmt(plot.top))\" width=\"\(fmt(slot))\" height=\"\(fmt(plot.innerHeight))\"/>"
            for (outcome, count) in [("succeeded", day.succeeded), ("failed", day.failed), ("cancelled", day.cancelled)] where count > 0 {
                let height = plot.baseline - plot.y(Double(count), max: top)
                y -= height
                bars += "<rect class=\"bar status-\(outcome)\" x=\"\(fmt(x))\" y=\"\(fmt(y))\" width=\"\(fmt(width))\" height=\"\(fmt(height))\" data-outcome=\"\(outcome)\" data-count=\"\(count)\"/>"
            }
            let title = "\(day.day): \(day.succeeded) succeeded, \(day.failed) failed, \(day.cancelled) cancelled"
            marks += "<a href=\"\(DashboardFormat.jobsHref(type: .backup, day: day.day).xmlEscaped)\"><g class=\"day\" data-day=\"\(day.day)\" data-succeeded=\"\(day.succeeded)\" data-failed=\"\(day.failed)\" data-cancelled=\"\(day.cancelled)\"><title>\(title)</title>\(bars)</g></a>"
            if index == 0 || index == days.count - 1 || index == days.count / 2 {
                labels.append((plot.left + (Double(index) + 0.5) * slot, String(day.day.dropFirst(5))))
            }
        }
        let caption = "Backup jobs per day, last \(days.count) days"
        let legend = legendHTML([("status-succeeded", "Succeeded"), ("status-failed", "Failed"), ("status-cancelled", "Cancelled")])
        let table = tableHTML(caption: caption, headers: ["Day", "Succeeded", "Failed", "Cancelled"],
                              rows: days.filter { $0.total > 0 }.map { [$0.day, "\($0.succeeded)", "\($0.failed)", "\($0.cancelled)"] })
        return figure(id: "chart-backups", caption: caption, extra: legend,
                      svg: svg(plot, label: caption, body: yAxis(plot, max: top, unit: .count("job", "jobs")) + xAxis(plot, labels: labels) + marks),
                      table: table)
    }

    /// Protected items ranked by the bytes only their points hold.
    static func itemStorage(_ rows: [ItemStorage]) -> String {
        var plot = Plot()
        plot.left = 180
        plot.height = plot.top + plot.bottom + Double(max(1, rows.count)) * 24
        let top = niceBytes(Double(rows.map(\.bytesOnlyHere).max() ?? 0))
        var marks = ""
        for (index, row) in rows.enumerated() {
            let y = plot.top + Double(index) * 24 + 4
            let width = top > 0 ? Double(row.bytesOnlyHere) / top * plot.innerWidth : 0
            marks += "<text class=\"label\" x=\"\(fmt(plot.left - 8))\" y=\"\(fmt(y + 12))\" text-anchor=\"end\">\(row.vm.description.xmlEscaped)</text>"
            marks += "<rect class=\"bar series-stored\" x=\"\(fmt(plot.left))\" y=\"\(fmt(y))\" width=\"\(fmt(width))\" height=\"16\" data-vm=\"\(row.vm.description.xmlEscaped)\" data-bytes=\"\(row.bytesOnlyHere)\" data-points=\"\(row.points)\"><title>\(row.vm.description.xmlEscaped): \(ByteSize.format(row.bytesOnlyHere)) held by its \(row.points) points alone</title></rect>"
        }
        let caption = "Storage each protected VM holds alone (bytes only its points reference)"
        let axis = (0...2).map { tick -> String in
            let x = plot.left + Double(tick) / 2 * plot.innerWidth
            return "<line class=\"grid\" x1=\"\(fmt(x))\" y1=\"\(fmt(plot.top))\" x2=\"\(fmt(x))\" y2=\"\(fmt(plot.baseline))\"/>"
                + "<text class=\"tick\" x=\"\(fmt(x))\" y=\"\(fmt(plot.baseline + 16))\" text-anchor=\"\(anchor(x, plot))\">\(ByteSize.format(Int64(top * Double(tick) / 2)))</text>"
        }.joined()
        let table = tableHTML(caption: caption, headers: ["VM", "Held alone", "Points"],
                              rows: rows.map { [$0.vm.description, ByteSize.format($0.bytesOnlyHere), "\($0.points)"] })
        return figure(id: "chart-item-storage", caption: caption, extra: "",
                      svg: svg(plot, label: caption, body: axis + marks), table: table)
    }

    // MARK: One protected item

    /// The item's points on a time line, coloured by consistency, hollow when on demand; the
    /// schedule's missed slots as crosses.
    static func timeline(_ history: ItemHistory) -> String {
        var plot = Plot()
        plot.height = 110
        let span = max(1, history.to.timeIntervalSince(history.from))
        func x(_ date: Date) -> Double { plot.left + date.timeIntervalSince(history.from) / span * plot.innerWidth }
        let middle = plot.top + plot.innerHeight / 2
        var marks = "<line class=\"axis\" x1=\"\(fmt(plot.left))\" y1=\"\(fmt(middle))\" x2=\"\(fmt(plot.left + plot.innerWidth))\" y2=\"\(fmt(middle))\"/>"
        for slot in history.missedSlots {
            let cx = x(slot)
            marks += "<g class=\"missed\" data-slot=\"\(iso(slot))\"><title>No point for the slot of \(DashboardFormat.instant(slot))</title>"
                + "<line x1=\"\(fmt(cx - 5))\" y1=\"\(fmt(middle - 5))\" x2=\"\(fmt(cx + 5))\" y2=\"\(fmt(middle + 5))\"/>"
                + "<line x1=\"\(fmt(cx - 5))\" y1=\"\(fmt(middle + 5))\" x2=\"\(fmt(cx + 5))\" y2=\"\(fmt(middle - 5))\"/></g>"
        }
        for point in history.points {
            let hollow = point.type == .onDemand ? " on-demand" : ""
            marks += "<circle class=\"point consistency-\(point.consistency.rawValue)\(hollow)\" cx=\"\(fmt(x(point.takenAt)))\" cy=\"\(fmt(middle))\" r=\"6\" data-point=\"\(point.id.xmlEscaped)\" data-taken=\"\(iso(point.takenAt))\" data-consistency=\"\(point.consistency.rawValue)\" data-type=\"\(point.type.rawValue)\"><title>\(point.id.xmlEscaped): \(DashboardFormat.instant(point.takenAt)), \(DashboardFormat.consistency(point.consistency)), \(point.type == .onDemand ? "on demand" : "scheduled")</title></circle>"
        }
        let labels = [history.from, history.from.addingTimeInterval(span / 2), history.to].map { (x($0), DashboardFormat.day($0)) }
        let caption = "Recovery points and missed schedule slots, \(DashboardFormat.day(history.from)) to \(DashboardFormat.day(history.to))"
        let legend = legendHTML([("consistency-applicationConsistent", "Application-consistent"),
                                 ("consistency-fileSystemConsistent", "File-system-consistent"),
                                 ("consistency-crashConsistent", "Crash-consistent"), ("on-demand", "Hollow: on demand"),
                                 ("missed", "× slot with no point")])
        var rows = history.points.map { [DashboardFormat.instant($0.takenAt), $0.id, DashboardFormat.consistency($0.consistency), $0.type == .onDemand ? "On demand" : "Scheduled"] }
        rows += history.missedSlots.map { [DashboardFormat.instant($0), "—", "no point for this slot", "Scheduled"] }
        rows.sort { $0[0] < $1[0] }
        let table = tableHTML(caption: caption, headers: ["When", "Point", "Consistency", "Type"], rows: rows)
        return figure(id: "chart-timeline", caption: caption, extra: legend,
                      svg: svg(plot, label: caption, body: xAxis(plot, labels: labels) + marks), table: table)
    }

    /// The item's backups over time: how long each took, and what it read and wrote.
    static func runs(_ history: ItemHistory) -> String {
        let span = max(1, history.to.timeIntervalSince(history.from))
        func chart(id: String, caption: String, unit: Unit, series: [(css: String, name: String, value: (ItemHistory.Run) -> Double)]) -> String {
            var plot = Plot()
            plot.height = 160
            func x(_ date: Date) -> Double { plot.left + date.timeIntervalSince(history.from) / span * plot.innerWidth }
            let maximum = history.backups.flatMap { run in series.map { $0.value(run) } }.max() ?? 0
            let top = unit == .bytes ? niceBytes(maximum) : niceCount(maximum)
            let width = 6.0
            var marks = ""
            for run in history.backups {
                for (index, item) in series.enumerated() {
                    let value = item.value(run)
                    let y = plot.y(value, max: top)
                    let left = x(run.startedAt) - width * Double(series.count) / 2 + Double(index) * width
                    marks += "<rect class=\"bar \(item.css)\" x=\"\(fmt(left))\" y=\"\(fmt(y))\" width=\"\(fmt(width))\" height=\"\(fmt(plot.baseline - y))\" data-job=\"\(run.job.xmlEscaped)\" data-series=\"\(item.name)\" data-value=\"\(unit == .bytes ? String(Int64(value)) : fmt(value))\"><title>\(run.job.xmlEscaped) (\(run.status.rawValue)): \(item.name) \(unit.format(value))</title></rect>"
                }
            }
            let labels = [history.from, history.from.addingTimeInterval(span / 2), history.to].map { (x($0), DashboardFormat.day($0)) }
            let table = tableHTML(caption: caption, headers: ["Started", "Job", "Status"] + series.map(\.name),
                                  rows: history.backups.map { run in
                                      [DashboardFormat.instant(run.startedAt), run.job, run.status.rawValue] + series.map { unit.format($0.value(run)) }
                                  })
            let legend = series.count > 1 ? legendHTML(series.map { ($0.css, $0.name) }) : ""
            return figure(id: id, caption: caption, extra: legend,
                          svg: svg(plot, label: caption, body: yAxis(plot, max: top, unit: unit) + xAxis(plot, labels: labels) + marks),
                          table: table)
        }
        return chart(id: "chart-durations", caption: "Backup durations", unit: .seconds,
                     series: [("series-duration", "duration", { $0.seconds })])
            + chart(id: "chart-transfers", caption: "Bytes each backup read from the disks and wrote to the vault", unit: .bytes,
                    series: [("series-logical", "read", { Double($0.readBytes) }), ("series-stored", "written", { Double($0.writtenBytes) })])
    }

    // MARK: Pieces

    enum Unit: Equatable {
        case bytes
        case seconds
        /// Things counted, in the singular and the plural.
        case count(String, String)

        func format(_ value: Double) -> String {
            switch self {
            case .bytes: ByteSize.format(Int64(value))
            case .seconds: value < 10 ? String(format: "%.1f s", value) : "\(Int(value.rounded())) s"
            case .count(let one, let many): "\(Int(value.rounded())) \(Int(value.rounded()) == 1 ? one : many)"
            }
        }
    }

    static func figure(id: String, caption: String, extra: String, svg: String, table: String) -> String {
        "<figure class=\"chart\" id=\"\(id)\"><figcaption>\(caption.xmlEscaped)</figcaption>\(extra)\(svg)\(table)</figure>"
    }

    static func svg(_ plot: Plot, label: String, body: String) -> String {
        "<svg viewBox=\"0 0 \(fmt(plot.width)) \(fmt(plot.height))\" role=\"img\" aria-label=\"\(label.xmlEscaped) (the table below has the values)\" preserveAspectRatio=\"xMinYMin meet\">\(body)</svg>"
    }

    /// Three labelled ticks, 0, half and the top, with grid lines.
    static func yAxis(_ plot: Plot, max top: Double, unit: Unit) -> String {
        (0...2).map { tick in
            let value = top * Double(tick) / 2
            let y = plot.y(value, max: top)
            return "<line class=\"grid\" x1=\"\(fmt(plot.left))\" y1=\"\(fmt(y))\" x2=\"\(fmt(plot.left + plot.innerWidth))\" y2=\"\(fmt(y))\"/>"
                + "<text class=\"tick\" x=\"\(fmt(plot.left - 6))\" y=\"\(fmt(y + 4))\" text-anchor=\"end\">\(unit.format(value).xmlEscaped)</text>"
        }.joined()
    }

    static func xAxis(_ plot: Plot, labels: [(Double, String)]) -> String {
        "<line class=\"axis\" x1=\"\(fmt(plot.left))\" y1=\"\(fmt(plot.baseline))\" x2=\"\(fmt(plot.left + plot.innerWidth))\" y2=\"\(fmt(plot.baseline))\"/>"
            + labels.map { "<text class=\"tick\" x=\"\(fmt($0.0))\" y=\"\(fmt(plot.baseline + 18))\" text-anchor=\"\(anchor($0.0, plot))\">\($0.1.xmlEscaped)</text>" }.joined()
    }

    /// A label near an edge of the plot is anchored on that side, so that it is not cut off.
    static func anchor(_ x: Double, _ plot: Plot) -> String {
        if x < plot.left + plot.innerWidth * 0.1 { return "start" }
        if x > plot.left + plot.innerWidth * 0.9 { return "end" }
        return "middle"
    }

    static func dayLabels(_ days: [String], x: (String) -> Double) -> [(Double, String)] {
        guard let first = days.first, let last = days.last else { return [] }
        let middle = days[days.count / 2]
        return Array(Set([first, middle, last])).sorted().map { (x($0), String($0.dropFirst(5))) }
    }

    static func legendHTML(_ entries: [(css: String, label: String)]) -> String {
        "<ul class=\"legend\">" + entries.map { "<li><span class=\"swatch \($0.css)\"></span>\($0.label.xmlEscaped)</li>" }.joined() + "</ul>"
    }

    static func tableHTML(caption: String, headers: [String], rows: [[String]]) -> String {
        "<table class=\"sr-only\"><caption>\(caption.xmlEscaped)</caption><thead><tr>"
            + headers.map { "<th scope=\"col\">\($0.xmlEscaped)</th>" }.joined() + "</tr></thead><tbody>"
            + rows.map { "<tr>" + $0.map { "<td>\($0.xmlEscaped)</td>" }.joined() + "</tr>" }.joined()
            + "</tbody></table>"
    }

    /// The smallest 2, 4, 6, 8 or 10 times a power of ten (of 1024 for bytes) at or above
    /// `value`: its half, the middle tick, is a round number too.
    static func niceCount(_ value: Double) -> Double {
        guard value > 0 else { return 2 }
        let power = pow(10, floor(log10(value)))
        return [2.0, 4, 6, 8, 10].map { $0 * power }.first { $0 >= value } ?? value
    }

    static func niceBytes(_ value: Double) -> Double {
        guard value > 0 else { return 1024 }
        var unit = 1.0
        while value / unit >= 1024 { unit *= 1024 }
        return niceCount(value / unit) * unit
    }

    static func fmt(_ value: Double) -> String { String(format: "%.1f", value) }

    static func iso(_ date: Date) -> String { ISO8601DateFormatter().string(from: date) }
}
