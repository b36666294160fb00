import CoffreCore
import CoffreServer
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// How the command line trusts an `https://` server: the system's authorities, the ones in a
/// PEM file (`--server-ca`), or one certificate pinned by its SHA-256 fingerprint
/// (`--fingerprint`, what `coffre serve --tls-self-signed` prints).
enum ServerTrust: Hashable, Sendable, CustomStringConvertible {
    case system
    case authorities(file: String)
    case fingerprint(String)

    var description: String {
        switch self {
        case .system: "system"
        case .authorities(let file): "ca " + file
        case .fingerprint(let pin): "pin " + pin
        }
    }

    /// The client's TLS settings for `server` (scheme, host, port).
    func configuration(host: String, port: Int) async throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch self {
        case .system:
            break
        case .authorities(let file):
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(file))
            } catch {
                throw CoffreError(.invalidOption, "Cannot read the certificate authorities in \(file): \(error)",
                                  workaround: "Give a PEM file of the authorities that signed the server's certificate with --server-ca (or COFFRE_SERVER_CA)")
            }
        case .fingerprint(let pin):
            // Only the pinned certificate is trusted: another one fails the handshake below.
            tls.trustRoots = .certificates(try await Self.pinnedChain(host: host, port: port, pin: pin))
            tls.certificateVerification = .noHostnameVerification
        }
        return tls
    }

    /// Connects once to read the server's certificates, and returns them when the first one
    /// has the pinned fingerprint.
    /// - Throws: `TLSFingerprintMismatch` naming both fingerprints; `ServerUnreachable`.
    static func pinnedChain(host: String, port: Int, pin: String) async throws -> [NIOSSLCertificate] {
        var probe = TLSConfiguration.makeClientConfiguration()
        probe.certificateVerification = .noHostnameVerification
        let context = try NIOSSLContext(configuration: probe)
        let group = MultiThreadedEventLoopGroup.singleton
        let presented = group.next().makePromise(of: [NIOSSLCertificate].self)
        let done = NIOLockedValueBox(false)
        let finish: @Sendable (Result<[NIOSSLCertificate], any Error>) -> Void = { result in
            guard done.withLockedValue({ done in defer { done = true }; return !done }) else { return }
            presented.completeWith(result)
        }
        let sni = SelfSignedCertificate.ipAddress(host) == nil ? host : nil
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try NIOSSLClientHandler(context: context, serverHostname: sni) { certificates, verification in
                        let matches = (try? certificates.first.map(ServerTLS.fingerprint(of:))) == pin
                        finish(.success(certificates))
                        verification.succeed(matches ? .certificateVerified : .failed)
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let chain: [NIOSSLCertificate]
        do {
            let channel = try await bootstrap.connect(host: host, port: port).get()
            channel.closeFuture.whenComplete { _ in finish(.failure(ChannelError.ioOnClosedChannel)) }
            let timeout = group.next().scheduleTask(in: .seconds(10)) { finish(.failure(ChannelError.connectTimeout(.seconds(10)))) }
            defer { timeout.cancel(); channel.close(promise: nil) }
            chain = try await presented.futureResult.get()
        } catch {
            finish(.failure(error))
            throw CoffreError(.serverUnreachable, "Cannot read the TLS certificate of \(host):\(port): \(error)",
                              workaround: "Check --server (or COFFRE_SERVER), and that `coffre serve` serves HTTPS there")
        }
        let found = try chain.first.map(ServerTLS.fingerprint(of:)) ?? "none"
        guard found == pin else {
            throw CoffreError(.tlsFingerprintMismatch,
                              "The server at \(host):\(port) presents a certificate with SHA-256 fingerprint \(found), not the pinned \(pin)",
                              workaround: "Someone may be intercepting the connection. If the server's certificate was replaced on purpose, read its new fingerprint in its log or on its dashboard's About page, then pin that")
        }
        return chain
    }
}
