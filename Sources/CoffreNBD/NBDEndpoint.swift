/// Where an NBD server listens.
public enum NBDEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// A Unix domain socket, as libvirt's pull-mode backup creates (`<server transport='unix' socket='…'/>`).
    case unix(path: String)
    /// A TCP host (name or address) and port.
    case tcp(host: String, port: Int)

    /// `unix:/run/…sock` or `tcp:host:port`, for messages.
    public var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
        }
    }
}
