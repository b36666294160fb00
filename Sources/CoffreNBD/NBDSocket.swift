import CoffreCore
import CoffreSystem

/// The socket of one NBD connection: a `StreamSocket` whose failures are NBD errors naming the
/// endpoint and the operation. Not thread-safe.
final class NBDSocket {
    let endpoint: NBDEndpoint
    private let socket: StreamSocket

    private init(socket: StreamSocket, endpoint: NBDEndpoint) {
        self.socket = socket
        self.endpoint = endpoint
    }

    var isOpen: Bool { socket.isOpen }

    /// Connects to `endpoint`; `timeout` bounds the connect and every later send and receive.
    static func connect(to endpoint: NBDEndpoint, timeout: Duration) throws -> NBDSocket {
        let address: StreamSocket.Address = switch endpoint {
        case .unix(let path): .unix(path: path)
        case .tcp(let host, let port): .tcp(host: host, port: port)
        }
        do {
            return NBDSocket(socket: try StreamSocket.connect(to: address, timeout: timeout), endpoint: endpoint)
        } catch {
            throw CoffreError.nbdConnectFailed(endpoint, reason: Self.reason(error))
        }
    }

    /// Sends all of `bytes`.
    func send(_ bytes: UnsafeRawBufferPointer, during operation: String) throws {
        do {
            try socket.send(bytes)
        } catch {
            throw self.error(error, during: operation)
        }
    }

    func send(_ bytes: [UInt8], during operation: String) throws {
        try bytes.withUnsafeBytes { try send($0, during: operation) }
    }

    /// Fills `buffer` completely; end of stream before that is an error.
    func receive(into buffer: UnsafeMutableRawBufferPointer, during operation: String) throws {
        do {
            try socket.receive(into: buffer)
        } catch {
            throw self.error(error, during: operation)
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
        socket.close()
    }

    private func error(_ failure: StreamSocket.Failure, during operation: String) -> CoffreError {
        switch failure {
        case .timedOut:
            CoffreError.nbdTimeout(endpoint, during: operation, seconds: socket.timeoutSeconds)
        case .closedByPeer(let received, let expected):
            CoffreError.nbdConnectionLost(
                endpoint, during: operation,
                reason: "the server closed the connection after \(received) of \(expected) expected bytes")
        case .closed:
            CoffreError.nbdConnectionLost(endpoint, during: operation,
                                          reason: "the connection is closed (an earlier error or close() ended it)")
        case .broken(let reason), .connectFailed(let reason):
            CoffreError.nbdConnectionLost(endpoint, during: operation, reason: reason)
        }
    }

    private static func reason(_ failure: StreamSocket.Failure) -> String {
        switch failure {
        case .connectFailed(let reason), .broken(let reason): reason
        case .timedOut: "timed out"
        case .closedByPeer: "the server closed the connection"
        case .closed: "the socket is closed"
        }
    }
}
