#if canImport(Glibc)
import Glibc
#endif
import CoffreCore
import Foundation

/// Reads and writes `state.json` and holds `agent.lock` (flock), which serialises the agent
/// processes of one guest: `prepare`, `release` and the watchdog's release.
struct StateStore {
    let paths: GuestPaths

    /// The current state; nil when no job was ever prepared.
    func read() throws(CoffreError) -> AgentState? {
        guard FileSystem.exists(paths.stateFile) else { return nil }
        let data = try FileSystem.read(paths.stateFile)
        do {
            return try Self.makeDecoder().decode(AgentState.self, from: data)
        } catch {
            throw .agentStateDamaged(paths.stateFile, detail: "\(error)")
        }
    }

    /// Replaces the state. **Never call while the guest is frozen.**
    func write(_ state: AgentState) throws(CoffreError) {
        try FileSystem.makeDirectories(paths.stateDirectory)
        let data: Data
        do {
            data = try Self.makeEncoder().encode(state)
        } catch {
            throw CoffreError("AgentStateDamaged", "Cannot encode the agent's state: \(error)")
        }
        try FileSystem.writeAtomically(data, to: paths.stateFile)
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
        var fd = open(paths.lockFile, O_RDONLY | O_CLOEXEC)
        if fd < 0 && errno == ENOENT {
            try FileSystem.makeDirectories(paths.stateDirectory)
            fd = open(paths.lockFile, O_RDONLY | O_CREAT | O_CLOEXEC, 0o600)
        }
        guard fd >= 0 else { throw .io("Opening", paths.lockFile, errno: errno) }
        let deadline = Monotonic.now() + wait
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR, Monotonic.now() < deadline else {
                close(fd)
                return nil
            }
            Monotonic.sleep(0.05)
        }
        return AgentLock(fd: fd)
    }
}

/// A held agent lock; released when dropped (or when the process dies, by the kernel).
final class AgentLock {
    private let fd: Int32
    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }
}
