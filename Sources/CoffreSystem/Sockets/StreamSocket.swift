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

    private init(fd: Int32, timeoutSeconds: Int) {
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
            var unixAddress = sockaddr_un()
            unixAddress.sun_family = sa_family_t(AF_UNIX)
            let capacity = MemoryLayout.size(ofValue: unixAddress.sun_path)
            let utf8 = Array(path.utf8)
            guard !utf8.isEmpty, utf8.count < capacity else {
                throw .connectFailed("a Unix socket path must be 1 to \(capacity - 1) bytes long")
            }
            withUnsafeMutableBytes(of: &unixAddress.sun_path) { raw in
                raw.copyBytes(from: utf8)
                raw[utf8.count] = 0
            }
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
