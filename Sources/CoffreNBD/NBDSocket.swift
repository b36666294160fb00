import CoffreCore
#if canImport(Glibc)
import Glibc
#endif

/// A connected stream socket with blocking I/O bounded by a timeout. Not thread-safe.
///
/// Every failure is a `CoffreError` naming the endpoint; `SIGPIPE` is never raised (`MSG_NOSIGNAL`).
final class NBDSocket {
    let endpoint: NBDEndpoint
    private var fd: Int32
    private let timeoutSeconds: Int

    private init(fd: Int32, endpoint: NBDEndpoint, timeoutSeconds: Int) {
        self.fd = fd
        self.endpoint = endpoint
        self.timeoutSeconds = timeoutSeconds
    }

    deinit { close() }

    var isOpen: Bool { fd >= 0 }

    /// Connects to `endpoint`; `timeout` bounds the connect and every later send and receive.
    static func connect(to endpoint: NBDEndpoint, timeout: Duration) throws -> NBDSocket {
        let seconds = max(1, Int(timeout.components.seconds))
        switch endpoint {
        case .unix(let path):
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let capacity = MemoryLayout.size(ofValue: address.sun_path)
            let utf8 = Array(path.utf8)
            guard !utf8.isEmpty, utf8.count < capacity else {
                throw CoffreError.nbdConnectFailed(endpoint, reason: "a Unix socket path must be 1 to \(capacity - 1) bytes long")
            }
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                raw.copyBytes(from: utf8)
                raw[utf8.count] = 0
            }
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw CoffreError.nbdConnectFailed(endpoint, reason: errnoDescription(errno)) }
            let socket = NBDSocket(fd: fd, endpoint: endpoint, timeoutSeconds: seconds)
            try socket.setTimeouts()
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard result == 0 else { throw CoffreError.nbdConnectFailed(endpoint, reason: errnoDescription(errno)) }
            return socket

        case .tcp(let host, let port):
            guard (1...65535).contains(port) else {
                throw CoffreError.nbdConnectFailed(endpoint, reason: "port \(port) is out of range")
            }
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &list)
            guard status == 0, let first = list else {
                throw CoffreError.nbdConnectFailed(endpoint, reason: String(cString: gai_strerror(status)))
            }
            defer { freeaddrinfo(first) }
            var lastError = "no address"
            var candidate: UnsafeMutablePointer<addrinfo>? = first
            while let info = candidate {
                candidate = info.pointee.ai_next
                let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.pointee.ai_protocol)
                guard fd >= 0 else { lastError = errnoDescription(errno); continue }
                let socket = NBDSocket(fd: fd, endpoint: endpoint, timeoutSeconds: seconds)
                try socket.setTimeouts()
                if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 {
                    var one: Int32 = 1
                    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    return socket
                }
                lastError = errno == EINPROGRESS ? "timed out after \(seconds) s" : errnoDescription(errno)
            }
            throw CoffreError.nbdConnectFailed(endpoint, reason: lastError)
        }
    }

    private func setTimeouts() throws {
        var value = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        for option in [SO_RCVTIMEO, SO_SNDTIMEO] {
            guard setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                throw CoffreError.nbdConnectFailed(endpoint, reason: "setsockopt: \(errnoDescription(errno))")
            }
        }
    }

    /// Sends all of `bytes`.
    func send(_ bytes: UnsafeRawBufferPointer, during operation: String) throws {
        guard isOpen else { throw closedError(operation) }
        var done = 0
        while done < bytes.count {
            let n = Glibc.send(fd, bytes.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL))
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError(errno, during: operation)
            }
            done += n
        }
    }

    func send(_ bytes: [UInt8], during operation: String) throws {
        try bytes.withUnsafeBytes { try send($0, during: operation) }
    }

    /// Fills `buffer` completely; end of stream before that is an error.
    func receive(into buffer: UnsafeMutableRawBufferPointer, during operation: String) throws {
        guard isOpen else { throw closedError(operation) }
        var done = 0
        while done < buffer.count {
            let n = recv(fd, buffer.baseAddress! + done, buffer.count - done, Int32(MSG_WAITALL))
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError(errno, during: operation)
            }
            if n == 0 {
                throw CoffreError.nbdConnectionLost(
                    endpoint, during: operation,
                    reason: "the server closed the connection after \(done) of \(buffer.count) expected bytes")
            }
            done += n
        }
    }

    /// Receives exactly `count` bytes.
    func receive(_ count: Int, during operation: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        if count > 0 { try bytes.withUnsafeMutableBytes { try receive(into: $0, during: operation) } }
        return bytes
    }

    /// Discards exactly `count` bytes.
    func skip(_ count: Int, during operation: String) throws {
        var left = count
        var scratch = [UInt8](repeating: 0, count: min(count, 64 << 10))
        while left > 0 {
            let n = min(left, scratch.count)
            try scratch.withUnsafeMutableBytes { try receive(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<n]), during: operation) }
            left -= n
        }
    }

    func close() {
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
    }

    private func ioError(_ code: Int32, during operation: String) -> CoffreError {
        if code == EAGAIN || code == EWOULDBLOCK {
            return CoffreError.nbdTimeout(endpoint, during: operation, seconds: timeoutSeconds)
        }
        return CoffreError.nbdConnectionLost(endpoint, during: operation, reason: errnoDescription(code))
    }

    private func closedError(_ operation: String) -> CoffreError {
        CoffreError.nbdConnectionLost(endpoint, during: operation, reason: "the connection is closed (an earlier error or close() ended it)")
    }
}
