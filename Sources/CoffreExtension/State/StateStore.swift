import CoffreCore
import CoffreSystem
import Foundation

/// Reads and writes `state.json` and holds `agent.lock` (flock), which serialises the agent
/// processes of one guest: `prepare`, `release` and the watchdog's release.
struct StateStore {
    let paths: GuestPaths

    /// The current state; nil when no job was ever prepared.
    func read() throws(CoffreError) -> AgentState? {
        guard FileIO.exists(paths.stateFile) else { return nil }
        let data = Data(try FileIO.readExistingFile(paths.stateFile))
        do {
            return try Self.makeDecoder().decode(AgentState.self, from: data)
        } catch {
            throw .agentStateDamaged(paths.stateFile, detail: "\(error)")
        }
    }

    /// Replaces the state. **Never call while the guest is frozen.**
    func write(_ state: AgentState) throws(CoffreError) {
        try FileIO.makeDirectories(paths.stateDirectory, mode: 0o700)
        let data: Data
        do {
            data = try Self.makeEncoder().encode(state)
        } catch {
            throw CoffreError(.agentStateDamaged, "Cannot encode the agent's state: \(error)")
        }
        try FileIO.writeFileAtomically(paths.stateFile, Array(data), mode: 0o600)
    }

    /// Dates to the millisecond: the freeze duration is computed from them, and the
    /// protocol's whole-second ISO 8601 would make it up to a second wrong.
    static let dateFormat = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.formatted(dateFormat))
        }
        return encoder
    }

    static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            return try dateFormat.parse(text)
        }
        return decoder
    }

    /// Takes the agent lock.
    /// - Parameter wait: seconds to keep trying; 0 tries once.
    /// - Returns: nil when another process holds it that long.
    func lock(wait: Double) throws(CoffreError) -> AgentLock? {
        // Read-only: the lock must be takeable while the guest is frozen, and opening an
        // existing file for writing blocks then. Created only when missing (never frozen then).
        let fd: Int32
        if let existing = try FileIO.openIfPresent(paths.lockFile, .readOnly) {
            fd = existing
        } else {
            try FileIO.makeDirectories(paths.stateDirectory, mode: 0o700)
            fd = try FileIO.open(paths.lockFile, [.readOnly, .create], mode: 0o600)
        }
        let deadline = Monotonic.now() + wait
        do {
            while try !FileIO.tryLock(fd, .exclusive, path: paths.lockFile) {
                guard Monotonic.now() < deadline else {
                    FileIO.close(fd)
                    return nil
                }
                Monotonic.sleep(0.05)
            }
        } catch {
            FileIO.close(fd)
            throw error
        }
        return AgentLock(fd: fd)
    }
}

/// A held agent lock; released when dropped (or when the process dies, by the kernel).
final class AgentLock {
    private let fd: Int32
    init(fd: Int32) { self.fd = fd }
    deinit { FileIO.close(fd) }
}
