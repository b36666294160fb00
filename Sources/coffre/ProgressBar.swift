import CoffreCore
import CoffreStorage
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A one-line progress bar on stderr, drawn only on a terminal, at most ten times a second.
final class ProgressBar: Sendable {
    let enabled: Bool
    let verb: String
    private let started = Date()
    private let lastDraw = Mutex<Double>(0)
    /// The newest progress seen, drawn once more by `finish()` so a short job still shows its bar.
    private let latest = Mutex<TransferProgress?>(nil)

    init(enabled: Bool, verb: String) {
        self.enabled = enabled && isatty(STDERR_FILENO) == 1
        self.verb = verb
    }

    var handler: ProgressHandler? {
        guard enabled else { return nil }
        return { [self] progress in update(progress) }
    }

    /// Draws `progress` (throttled); for callers that poll instead of passing `handler`.
    func update(_ progress: TransferProgress) {
        guard enabled else { return }
        latest.withLock { $0 = progress }
        draw(progress, force: false)
    }

    private func draw(_ p: TransferProgress, force: Bool) {
        let now = Date().timeIntervalSince(started)
        let due = lastDraw.withLock { last -> Bool in
            guard force || now - last >= 0.1 else { return false }
            last = now
            return true
        }
        guard due else { return }
        let fraction = p.totalBytes > 0 ? Double(p.scannedBytes) / Double(p.totalBytes) : 1
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let rate = now > 0 ? Int64(Double(p.scannedBytes) / now) : 0
        let line = "\r\(verb) [\(bar)] \(Int(fraction * 100))% \(ByteSize.format(p.scannedBytes))/\(ByteSize.format(p.totalBytes)) read \(ByteSize.format(p.readBytes)) written \(ByteSize.format(p.writtenBytes)) \(ByteSize.format(rate))/s "
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// Prints a line of its own on stderr (on a fresh line when the bar is drawn), whether or
    /// not the bar is shown.
    func interrupt(_ message: String) {
        FileHandle.standardError.write(Data(((enabled ? "\r\u{1B}[K" : "") + message + "\n").utf8))
    }

    func finish() {
        guard enabled else { return }
        if let progress = latest.withLock({ $0 }) { draw(progress, force: true) }
        FileHandle.standardError.write(Data("\n".utf8))
    }
}
