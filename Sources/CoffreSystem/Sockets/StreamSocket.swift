import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A connected stream socket (Unix or TCP) with blocking I/O bounded by a timeout. Not
/// thread-safe; **blocks**: use it from a thread of its own (`runOnThread`).
///
/// `SIGPIPE` is never raised (`MSG_NOSIGNAL`); callers turn `Failure`s into their own errors.
package final class StreamSocket {
    package enum Address: Sendable {
        case unix(path: String)
        case tcp(host: String, port: Int)
    }

    package enum Failure: Error, Sendable, Equatable {
        /// The connection could not be made, with why.
        case connectFailed(String)
        /// A send or receive waited longer than the timeout.
        case timedOut
        /// The peer closed the connection after `received` of `expected` bytes.
        case closedByPeer(received: Int, expected: Int)
        /// The connection broke (reset, …), with why.
        case broken(String)
        /// This socket was closed (an earlier error or `close()`).
        case closed
    }

    private var fd: Int32
    package let timeoutSeconds: Int

    fileprivate init(fd: Int32, timeoutSeconds: Int) {
        self.fd = fd
        self.timeoutSeconds = timeoutSeconds
    }

    deinit { close() }

    package var isOpen: Bool { fd >= 0 }

    /// Connects; `timeout` bounds the connect and every later send and receive.
    package static func connect(to address: Address, timeout: Duration) throws(Failure) -> StreamSocket {
        let seconds = max(1, Int(timeout.components.seconds))
        switch address {
        case .unix(let path):
            var unixAddress = try unixSocketAddress(path)
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw .connectFailed(errnoDescription(errno)) }
            let socket = StreamSocket(fd: fd, timeoutSeconds: seconds)
            try socket.setTimeouts()
            let result = withUnsafePointer(to: &unixAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard result == 0 else { throw .connectFailed(errnoDescription(errno)) }
            return socket

        case .tcp(let host, let port):
            guard (1...65535).contains(port) else { throw .connectFailed("port \(port) is out of range") }
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &list)
            guard status == 0, let first = list else { throw .connectFailed(String(cString: gai_strerror(status))) }
            defer { freeaddrinfo(first) }
            var lastError = "no address"
            var candidate: UnsafeMutablePointer<addrinfo>? = first
            while let info = candidate {
                candidate = info.pointee.ai_next
                let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.pointee.ai_protocol)
                guard fd >= 0 else { lastError = errnoDescription(errno); continue }
                let socket = StreamSocket(fd: fd, timeoutSeconds: seconds)
                try socket.setTimeouts()
                if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 {
                    var one: Int32 = 1
                    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    return socket
                }
                lastError = errno == EINPROGRESS ? "timed out after \(seconds) s" : errnoDescription(errno)
            }
            throw .connectFailed(lastError)
        }
    }

    /// The address of a Unix socket at `path`.
    fileprivate static func unixSocketAddress(_ path: String) throws(Failure) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        let utf8 = Array(path.utf8)
        guard !utf8.isEmpty, utf8.count < capacity else {
            throw .connectFailed("a Unix socket path must be 1 to \(capacity - 1) bytes long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: utf8)
            raw[utf8.count] = 0
        }
        return address
    }

    private func setTimeouts() throws(Failure) {
        var value = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        for option in [SO_RCVTIMEO, SO_SNDTIMEO] {
            guard setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                throw .connectFailed("setsockopt: \(errnoDescription(errno))")
            }
        }
    }

    /// Sends all of `bytes`.
    package func send(_ bytes: UnsafeRawBufferPointer) throws(Failure) {
        guard isOpen else { throw .closed }
        var done = 0
        while done < bytes.count {
            let n = Glibc.send(fd, bytes.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL))
            if n < 0 {
                if errno == EINTR { continue }
                throw Self.failure(errno)
            }
            done += n
        }
    }

    /// Fills `buffer` completely; end of stream before that is `closedByPeer`.
    package func receive(into buffer: UnsafeMutableRawBufferPointer) throws(Failure) {
        guard isOpen else { throw .closed }
        var done = 0
        while done < buffer.count {
            let n = recv(fd, buffer.baseAddress! + done, buffer.count - done, Int32(MSG_WAITALL))
            if n < 0 {
                if errno == EINTR { continue }
                throw Self.failure(errno)
            }
            if n == 0 { throw .closedByPeer(received: done, expected: buffer.count) }
            done += n
        }
    }

    /// Ends the connection both ways without closing the descriptor: a send or receive waiting
    /// on another thread returns at once. Then `close()` it from that thread.
    package func shutdown() {
        if fd >= 0 { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
    }

    package func close() {
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
    }

    private static func failure(_ code: Int32) -> Failure {
        code == EAGAIN || code == EWOULDBLOCK ? .timedOut : .broken(errnoDescription(code))
    }
}

/// A listening Unix socket (a server's): `accept()` blocks for the next connection, whose
/// sends and receives wait without a timeout (a client may stay idle for hours).
/// `close()` from another thread wakes a waiting `accept()` and removes the socket file.
package final class StreamListener: Sendable {
    package let path: String
    private let fd: Int32
    private let closed = Atomic(false)

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    /// Listens at `path` (a stale socket file there is replaced), mode 0600.
    package static func listen(unixPath path: String) throws(StreamSocket.Failure) -> StreamListener {
        var address = try StreamSocket.unixSocketAddress(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .connectFailed(errnoDescription(errno)) }
        var existing = stat()
        if lstat(path, &existing) == 0, existing.st_mode & S_IFMT == S_IFSOCK { unlink(path) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, chmod(path, 0o600) == 0, Glibc.listen(fd, 16) == 0 else {
            let reason = errnoDescription(errno)
            _ = Glibc.close(fd)
            throw .connectFailed("cannot listen at \(path): \(reason)")
        }
        return StreamListener(fd: fd, path: path)
    }

    /// The next connection; `.closed` once `close()` was called.
    package func accept() throws(StreamSocket.Failure) -> StreamSocket {
        while !closed.load(ordering: .acquiring) {
            let client = Glibc.accept(fd, nil, nil)
            if client >= 0 {
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                return StreamSocket(connected: client)
            }
            if errno == EINTR || errno == ECONNABORTED { continue }
            throw errno == EINVAL || errno == EBADF ? .closed : .broken(errnoDescription(errno))
        }
        throw .closed
    }

    /// Stops listening: wakes `accept()`, removes the socket file. Connections stay open.
    package func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = shutdown(fd, Int32(SHUT_RDWR))
        _ = Glibc.close(fd)
        unlink(path)
    }
}

extension StreamSocket {
    /// An accepted connection: no timeouts.
    convenience init(connected fd: Int32) {
        self.init(fd: fd, timeoutSeconds: 0)
    }
}
