import ArgumentParser
import CoffreCore
import CoffreEngine
import CoffreServer
import Foundation
import Synchronization

/// Waits for jobs and prints how they ended, the way every job-starting command does.
enum JobOutput {
    /// Waits for `job`, drawing a progress bar on a terminal, prints its outcome and throws
    /// exit code 1 when it did not succeed.
    static func wait(_ plane: any ControlPlane, _ job: Job, progress: Bool = false, json: Bool = false) async throws -> Job {
        let bar = ProgressBar(enabled: progress && !json, verb: job.type.rawValue.lowercased())
        let told = Mutex(false)
        let final = try await plane.wait(for: job.id) { current in
            // An instant restore's VM runs long before the job ends: say so as soon as it does.
            if !json, let after = current.details["runningAfterSeconds"], let vm = current.details["instantVM"],
               current.status == .inProgress, told.withLock({ told in defer { told = true }; return !told }) {
                bar.interrupt("\(vm) is running (\(after) s after the start); its disks are being copied")
            }
            bar.update(TransferProgress(current.progress))
        }
        bar.finish()
        if json {
            try printJSON(final)
        } else {
            print(line(final))
        }
        guard final.status == .succeeded else { throw ExitCode(1) }
        return final
    }

    /// Waits for several jobs (bulk register or protect) and prints one line each; exit 1 if
    /// any failed or any VM got no job. `--json` prints the API's `{jobs, errors}` with the
    /// jobs as they ended.
    static func waitAll(_ plane: any ControlPlane, _ result: BulkResponse, json: Bool) async throws {
        var finals: [Job] = []
        for job in result.jobs { finals.append(try await plane.wait(for: job.id, onUpdate: nil)) }
        if json {
            struct Out: Encodable { var jobs: [Job]; var errors: [BulkResponse.Failure] }
            try printJSON(Out(jobs: finals, errors: result.errors))
        } else {
            finals.forEach { print(line($0)) }
            for failure in result.errors {
                let error = CoffreError(failure.code, failure.message, workaround: failure.workaround)
                FileHandle.standardError.write(Data("coffre: error \(failure.vm): \(error)\n".utf8))
            }
        }
        if !result.errors.isEmpty || finals.contains(where: { $0.status != .succeeded }) { throw ExitCode(1) }
    }

    /// `job-… Backup web01 Succeeded (12 s) point=rp-…` or the error on failure.
    static func line(_ job: Job) -> String {
        var text = "\(job.id) \(job.type.rawValue)"
        if let vm = job.vm { text += " \(vm)" }
        text += " \(job.status.rawValue)"
        if let end = job.endedAt { text += " (\(Self.duration(end.timeIntervalSince(job.startedAt))))" }
        for key in ["point", "consistency", "restoredVM", "runningAfterSeconds", "verified", "files"] {
            if let value = job.details[key] { text += " \(key)=\(value)" }
        }
        if let error = job.error { text += "\n  error \(error)" }
        return text
    }

    static func duration(_ seconds: Double) -> String {
        seconds < 60 ? String(format: "%.1f s", seconds) : String(format: "%d min %02d s", Int(seconds) / 60, Int(seconds) % 60)
    }

    /// A job with its steps, for `coffre job show`.
    static func details(_ job: Job) -> String {
        var lines = [line(job)]
        lines.append("  started \(Engine.instant(job.startedAt))" + (job.endedAt.map { ", ended \(Engine.instant($0))" } ?? ""))
        if job.progress.totalBytes > 0 {
            lines.append("  progress \(ByteSize.format(job.progress.scannedBytes))/\(ByteSize.format(job.progress.totalBytes)), read \(ByteSize.format(job.progress.readBytes)), written \(ByteSize.format(job.progress.writtenBytes))")
        }
        for step in job.steps {
            var text = "  - \(step.name): \(step.status.rawValue)"
            if let end = step.endedAt { text += " (\(duration(end.timeIntervalSince(step.startedAt))))" }
            if let bytes = step.bytes { text += " \(ByteSize.format(bytes))" }
            if let detail = step.detail { text += " — \(detail)" }
            lines.append(text)
        }
        for (key, value) in job.details.sorted(by: { $0.key < $1.key }) { lines.append("  \(key): \(value)") }
        if job.cancelRequested && job.status == .inProgress { lines.append("  cancellation requested") }
        return lines.joined(separator: "\n")
    }
}

extension TransferProgress {
    init(_ progress: JobProgress) {
        self.init()
        totalBytes = progress.totalBytes
        scannedBytes = progress.scannedBytes
        readBytes = progress.readBytes
        writtenBytes = progress.writtenBytes
    }
}

/// Left- or right-aligned columns for tables.
func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - text.count))
    return right ? fill + text : text + fill
}
