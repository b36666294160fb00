import CoffreCore
import CoffreSystem
import Crypto
import Foundation
import SwiftASN1
import X509
#if canImport(Glibc)
import Glibc
#endif

/// The certificate `coffre serve --tls-self-signed` answers HTTPS with: made on the first start
/// in `<data>/tls/` (a P-256 key, valid 10 years, for this host's names), kept afterwards so
/// that the fingerprint clients pinned stays the same.
enum SelfSignedCertificate {
    static let validity: TimeInterval = 10 * 365 * 86_400

    /// Where the certificate and its key are kept: `<data>/tls/coffre.crt` and `coffre.key`.
    static func files(dataPath: String) -> (folder: String, certificate: String, key: String) {
        let folder = dataPath + "/tls"
        return (folder, folder + "/coffre.crt", folder + "/coffre.key")
    }

    /// The certificate and key files, made when missing.
    /// - Parameter host: the address `coffre serve` listens on; added to the names when specific.
    /// - Returns: the two paths, and whether they were made now.
    static func ensure(dataPath: String, host: String) throws -> (certificate: String, key: String, created: Bool) {
        let (folder, certificate, key) = files(dataPath: dataPath)
        let fm = FileManager.default
        // The key is written before the certificate: a certificate alone means its key was lost.
        if fm.fileExists(atPath: certificate) {
            guard fm.fileExists(atPath: key) else {
                throw CoffreError(.invalidConfiguration, "\(certificate) exists but its key \(key) does not",
                                  workaround: "Put the key back, or remove \(certificate) to make a new certificate (clients must then pin its new fingerprint)")
            }
            return (certificate, key, false)
        }
        try fm.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let (certificatePEM, keyPEM) = try make(names: names(host: host))
        try FileIO.writeFileAtomically(key, Array(keyPEM.utf8), mode: 0o600)
        try FileIO.writeFileAtomically(certificate, Array(certificatePEM.utf8), mode: 0o644)
        return (certificate, key, true)
    }

    /// localhost, this host's name, the loopback addresses, and `host` when it is a name or an
    /// address other than "any".
    static func names(host: String) -> [String] {
        var names = ["localhost", ProcessInfo.processInfo.hostName, "127.0.0.1", "::1"]
        if !["0.0.0.0", "::", ""].contains(host) { names.append(host) }
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }

    /// A self-signed server certificate for `names` and its private key, both PEM.
    static func make(names: [String], now: Date = Date()) throws -> (certificate: String, key: String) {
        let privateKey = P256.Signing.PrivateKey()
        let key = Certificate.PrivateKey(privateKey)
        let subject = try DistinguishedName {
            OrganizationName("Coffre")
            CommonName(names.first { $0 != "localhost" && ipAddress($0) == nil } ?? "localhost")
        }
        let alternativeNames = SubjectAlternativeNames(names.map { name in
            ipAddress(name).map { .ipAddress(ASN1OctetString(contentBytes: $0[...])) } ?? .dnsName(name)
        })
        // No KeyUsage: one without keyCertSign stops OpenSSL and BoringSSL from taking this
        // self-signed certificate as its own issuer, so it could not be trusted as given.
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            try ExtendedKeyUsage([.serverAuth])
            alternativeNames
        }
        var serial = [UInt8](repeating: 0, count: 16)
        for index in serial.indices { serial[index] = UInt8.random(in: 0...255) }
        serial[0] &= 0x7F
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(bytes: serial[...]), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(validity),
            issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: key)
        return (try certificate.serializeAsPEM().pemString, privateKey.pemRepresentation)
    }

    /// The bytes of an IPv4 or IPv6 address, nil for a name.
    static func ipAddress(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
