public import CoffreCore
import CoffreSystem
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The files of points for the API and the dashboard (`PointFileBrowser`).
///
/// - A point is mounted with its file systems on its first request, in a folder of its own
///   under `runDirectory`, and stays mounted while requests and downloads use it.
/// - It is unmounted `idleTimeout` after the last one ended, and its reader is closed, so the
///   point can be collected again.
/// - Requests for a point that is being mounted wait for that mount.
/// - Downloads are pulled by the client: a thread reads ahead at most `PointDownload`'s few
///   pieces, so a slow client holds a little memory, not the whole file.
public final class PointFileService: PointFileBrowser {
    public let runDirectory: String
    public let idleTimeout: Duration
    private let state = Mutex<[String: Slot]>([:])
    private let reaper = Mutex<Task<Void, Never>?>(nil)

    private struct Slot {
        /// The mount, once it is up (its task is the one mounting it).
        var mounting: Task<PointMount, any Error>
        var users = 0
        var idleSince = ContinuousClock.now
    }

    public init(runDirectory: String, idleTimeout: Duration = .seconds(300)) {
        self.runDirectory = runDirectory
        self.idleTimeout = idleTimeout
    }

    public func list(point id: String, path: String, open: @escaping @Sendable () async throws -> any PointDisks) async throws -> PointListing {
        let mount = try await acquire(id, open)
        defer { release(id) }
        return try await runOnThread { _ in try PointFiles(mount).list(path) }
    }

    public func download(point id: String, path: String, open: @escaping @Sendable () async throws -> any PointDisks) async throws -> PointDownload {
        let mount = try await acquire(id, open)
        let files = PointFiles(mount)
        let entry: PointFileEntry
        do {
            entry = try await runOnThread { _ in try files.list(path).entry }
        } catch {
            release(id)
            throw error
        }
        let pipe = ChunkPipe()
        let released = Atomic(false)
        let done: @Sendable () -> Void = { [self] in
            if !released.exchange(true, ordering: .relaxed) { release(id) }
        }
        let isFile = entry.kind == .file
        Thread.detachNewThread {
            do {
                if isFile {
                    try files.read(path) { try pipe.write($0) }
                } else {
                    try files.archive(path) { try pipe.write($0) }
                }
                pipe.finish(nil)
            } catch {
                pipe.finish(error)
            }
            done()
        }
        let name = entry.name == "/" ? "point" : entry.name
        return PointDownload(fileName: isFile ? name : name + ".tar", isArchive: !isFile, size: isFile ? entry.size : nil,
                             next: { try await pipe.next() }, cancel: { pipe.cancel() })
    }

    public func closeAll() async {
        let slots = state.withLock { slots in
            defer { slots = [:] }
            return Array(slots.values)
        }
        for slot in slots {
            if let mount = try? await slot.mounting.value {
                await runOnThread { _ in
                    try? mount.unmount(lazy: true)
                    rmdir(mount.directory)
                }
            }
        }
    }

    // MARK: Mounts

    private func acquire(_ id: String, _ open: @escaping @Sendable () async throws -> any PointDisks) async throws -> PointMount {
        startReaper()
        let task = state.withLock { slots in
            if slots[id] == nil {
                let directory = runDirectory + "/browse-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
                slots[id] = Slot(mounting: Task {
                    let disks = try await open()
                    return try await runOnThread { _ in
                        try FileIO.makeDirectories(directory, mode: 0o700)
                        do {
                            return try PointMount.mount(disks, at: directory, options: .init(partitions: true))
                        } catch {
                            rmdir(directory)
                            throw error
                        }
                    }
                })
            }
            slots[id]!.users += 1
            return slots[id]!.mounting
        }
        do {
            return try await task.value
        } catch {
            // A failed mount is forgotten, so the next request tries again.
            state.withLock { slots in
                slots[id]?.users -= 1
                if slots[id]?.users == 0 { slots[id] = nil }
            }
            throw error
        }
    }

    private func release(_ id: String) {
        state.withLock { slots in
            slots[id]?.users -= 1
            slots[id]?.idleSince = .now
        }
    }

    /// Unmounts the points no request has used for `idleTimeout`.
    private func startReaper() {
        reaper.withLock { reaper in
            guard reaper == nil else { return }
            reaper = Task { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(5))
                    guard let self else { return }
                    await self.unmountIdle()
                }
            }
        }
    }

    func unmountIdle() async {
        let now = ContinuousClock.now
        let idle = state.withLock { slots in
            let ids = slots.filter { $0.value.users == 0 && now - $0.value.idleSince >= idleTimeout }.map(\.key)
            return ids.compactMap { id in slots.removeValue(forKey: id)?.mounting }
        }
        for task in idle {
            if let mount = try? await task.value {
                await runOnThread { _ in
                    try? mount.unmount(lazy: true)
                    rmdir(mount.directory)
                }
            }
        }
    }

    deinit {
        reaper.withLock { $0?.cancel() }
    }
}

/// Pieces of a download handed from the thread reading them to the task sending them: the
/// reader blocks while `capacity` pieces wait, the sender waits while none does.
final class ChunkPipe: Sendable {
    private enum Next {
        case chunk([UInt8]), end((any Error)?), wait
    }

    private struct State {
        var chunks: [[UInt8]] = []
        var ended = false
        var error: (any Error)?
        var waiter: CheckedContinuation<[UInt8]?, any Error>?
        var cancelled = false
    }

    private let state = Mutex(State())
    private let space: DispatchSemaphore
    private let capacity: Int

    init(capacity: Int = 4) {
        self.capacity = capacity
        space = DispatchSemaphore(value: capacity)
    }

    /// From the reading thread; throws `Cancelled` once the sender has gone.
    func write(_ chunk: [UInt8]) throws {
        space.wait()
        let waiter = try state.withLock { s -> CheckedContinuation<[UInt8]?, any Error>? in
            if s.cancelled { throw CoffreError(.cancelled, "The download was abandoned by its client") }
            if let waiter = s.waiter {
                s.waiter = nil
                return waiter
            }
            s.chunks.append(chunk)
            return nil
        }
        if let waiter {
            space.signal()
            waiter.resume(returning: chunk)
        }
    }

    /// From the reading thread: the end, or the error that ended it.
    func finish(_ error: (any Error)?) {
        let waiter = state.withLock { s -> CheckedContinuation<[UInt8]?, any Error>? in
            s.ended = true
            s.error = error
            defer { s.waiter = nil }
            return s.waiter
        }
        if let error { waiter?.resume(throwing: error) } else { waiter?.resume(returning: nil) }
    }

    /// The next piece; nil at the end.
    func next() async throws -> [UInt8]? {
        try await withCheckedThrowingContinuation { continuation in
            let next = state.withLock { s -> Next in
                if !s.chunks.isEmpty { return .chunk(s.chunks.removeFirst()) }
                if s.ended { return .end(s.error) }
                s.waiter = continuation
                return .wait
            }
            switch next {
            case .chunk(let chunk):
                space.signal()
                continuation.resume(returning: chunk)
            case .end(let error?):
                continuation.resume(throwing: error)
            case .end(nil):
                continuation.resume(returning: nil)
            case .wait:
                break
            }
        }
    }

    /// The sender has gone: the reader stops at its next write.
    func cancel() {
        state.withLock { $0.cancelled = true }
        for _ in 0..<capacity + 1 { space.signal() }
    }
}
