import CoffreCore
import Crypto
public import Foundation
public import NIOSSL

/// The certificate chain and key `coffre serve` answers HTTPS with, and what people check
/// against: the SHA-256 fingerprint of the certificate and when it expires.
public struct ServerTLS: Sendable {
    public let certificateFile: String
    public let chain: [NIOSSLCertificate]
    let key: NIOSSLPrivateKey
    /// SHA-256 of the leaf certificate's DER bytes, as `AB:CD:…` (what `openssl x509
    /// -fingerprint -sha256` prints, and what `coffre --fingerprint` pins).
    public let fingerprint: String
    public let notValidAfter: Date

    /// Reads a PEM certificate chain (leaf first) and its PEM private key.
    /// - Throws: `InvalidConfiguration` naming the file that is missing or unreadable.
    public static func load(certificateFile: String, keyFile: String) throws -> ServerTLS {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificateFile)
        } catch {
            throw CoffreError(.invalidConfiguration, "Cannot read the TLS certificate \(certificateFile): \(error)",
                              workaround: "Give a PEM certificate chain, the server's certificate first (or use --tls-self-signed)")
        }
        guard let leaf = chain.first else {
            throw CoffreError(.invalidConfiguration, "\(certificateFile) holds no PEM certificate",
                              workaround: "Give a PEM certificate chain, the server's certificate first (or use --tls-self-signed)")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        } catch {
            throw CoffreError(.invalidConfiguration, "Cannot read the TLS private key \(keyFile): \(error)",
                              workaround: "Give the PEM private key of the certificate's public key")
        }
        return ServerTLS(certificateFile: certificateFile, chain: chain, key: key,
                         fingerprint: try fingerprint(of: leaf),
                         notValidAfter: Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter)))
    }

    /// `AB:CD:…`: SHA-256 of the certificate's DER bytes.
    public static func fingerprint(of certificate: NIOSSLCertificate) throws -> String {
        formatFingerprint(SHA256.hash(data: try certificate.toDERBytes()))
    }

    public static func formatFingerprint(_ digest: some Sequence<UInt8>) -> String {
        digest.map { String(format: "%02X", $0) }.joined(separator: ":")
    }

    /// A pinned fingerprint as people paste it: with or without colons, any case; nil when it
    /// is not 32 bytes of hex.
    public static func normalizedFingerprint(_ text: String) -> String? {
        let hex = text.filter { $0 != ":" && !$0.isWhitespace }.uppercased()
        guard hex.count == 64, hex.allSatisfy(\.isHexDigit) else { return nil }
        var pairs: [String] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            pairs.append(String(hex[index..<next]))
            index = next
        }
        return pairs.joined(separator: ":")
    }

    var serverConfiguration: TLSConfiguration {
        TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
    }
}
