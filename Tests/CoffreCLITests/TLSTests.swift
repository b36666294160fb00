import Foundation
import Testing

/// `coffre serve` over HTTPS and the command line's trust in it: a self-signed certificate
/// pinned by its fingerprint (a wrong pin refused), a certificate authority's file, plain HTTP
/// kept to loopback, and the doctor's certificate check.
@Suite("HTTPS", .serialized)
struct TLSTests {
    func openssl(_ arguments: [String]) throws -> RunResult {
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/openssl"), arguments, timeout: 60)
        guard result.succeeded else { throw HarnessError("openssl \(arguments) failed: \(result)") }
        return result
    }

    /// What `openssl x509 -fingerprint -sha256` says of a PEM certificate.
    func opensslFingerprint(_ file: URL) throws -> String {
        let out = try openssl(["x509", "-in", file.path, "-noout", "-fingerprint", "-sha256"]).stdout
        return String(out.split(separator: "=").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func remote(_ server: ServerProcess, url: String? = nil, _ trust: [String: String]) -> [String: String] {
        ["COFFRE_SERVER": url ?? server.url, "COFFRE_TOKEN_FILE": server.data.appendingPathComponent("admin-token").path]
            .merging(trust) { $1 }
    }

    @Test("--tls-self-signed: the printed fingerprint is the certificate's, it pins; a wrong pin, no pin, and http:// are refused clearly; a restart keeps the certificate")
    func selfSigned() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            let data = tmp.appendingPathComponent("data")
            var server = try ServerProcess(coffre, data: data, tls: true)
            let certificate = data.appendingPathComponent("tls/coffre.crt")
            let fingerprint = try #require(server.fingerprint)
            #expect(server.url.hasPrefix("https://"))
            #expect(try opensslFingerprint(certificate) == fingerprint)
            let keyMode = try FileManager.default.attributesOfItem(atPath: data.appendingPathComponent("tls/coffre.key").path)[.posixPermissions] as? Int
            #expect(keyMode == 0o600)

            // Pinned (with or without colons, any case), or trusted through the certificate as a CA file.
            let pinned = try coffre.run(["vm", "list"], env: remote(server, ["COFFRE_FINGERPRINT": fingerprint]))
            #expect(pinned.succeeded, "\(pinned)")
            let loose = fingerprint.replacingOccurrences(of: ":", with: "").lowercased()
            #expect(try coffre.run(["vm", "list", "--fingerprint", loose], env: remote(server, [:])).succeeded)
            #expect(try coffre.run(["vm", "list", "--server-ca", certificate.path], env: remote(server, [:])).succeeded)

            // A wrong pin: refused before any request, naming both fingerprints.
            let wrong = String(fingerprint.reversed())
            let refused = try coffre.run(["discover"], env: remote(server, ["COFFRE_FINGERPRINT": wrong]))
            #expect(!refused.succeeded)
            #expect(refused.stderr.contains("[TLSFingerprintMismatch]") && refused.stderr.contains(fingerprint)
                    && refused.stderr.contains(wrong), "\(refused)")
            #expect(try coffre.json([JobLine].self, ["jobs", "--json"], env: remote(server, ["COFFRE_FINGERPRINT": fingerprint])).isEmpty,
                    "the refused discover never reached the server")
            // The system's authorities do not know a self-signed certificate.
            let untrusted = try coffre.run(["vm", "list"], env: remote(server, [:]))
            #expect(!untrusted.succeeded && untrusted.stderr.contains("[ServerUnreachable]")
                    && untrusted.stderr.contains("CERTIFICATE_VERIFY_FAILED") && untrusted.stderr.contains("--fingerprint"), "\(untrusted)")
            let notHex = try coffre.run(["vm", "list", "--fingerprint", "abc"], env: remote(server, [:]))
            #expect(!notHex.succeeded && notHex.stderr.contains("[InvalidOption]"), "\(notHex)")
            let plainURL = server.url.replacingOccurrences(of: "https://", with: "http://")
            let plain = try coffre.run(["vm", "list"], env: remote(server, url: plainURL, ["COFFRE_FINGERPRINT": fingerprint]))
            #expect(!plain.succeeded && plain.stderr.contains("[InvalidOption]"), "\(plain)")

            // The About page shows the fingerprint; doctor checks the certificate.
            let token = try String(contentsOf: data.appendingPathComponent("admin-token"), encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let about = try runProcess(URL(fileURLWithPath: "/usr/bin/curl"),
                                       ["-sf", "-m", "10", "--cacert", certificate.path, "-H", "Cookie: coffre_token=\(token)", server.url + "/about"])
            #expect(about.succeeded && about.stdout.contains("id=\"tls-fingerprint\">\(fingerprint)<"), "\(about)")
            // Signing in over HTTPS gives a cookie the browser keeps off plain HTTP.
            let login = try runProcess(URL(fileURLWithPath: "/usr/bin/curl"), [
                "-sS", "-m", "10", "-D", "-", "-o", "/dev/null", "--cacert", certificate.path, "-H", "Origin: \(server.url)",
                "--data-urlencode", "token=\(token)", server.url + "/login"])
            let cookie = login.stdout.split(separator: "\r\n").first { $0.lowercased().hasPrefix("set-cookie: coffre_token=") }
            #expect(cookie.map { $0.contains("Secure") && $0.contains("HttpOnly") } == true, "\(login)")
            #expect(server.stop() == 0)

            let doctor = try coffre.run(["doctor", "--data", data.path, "--json"])
            #expect(doctor.stdout.contains("\"name\" : \"tls\"") || doctor.stdout.contains("\"name\":\"tls\""), "\(doctor)")
            let report = try decodeJSON(DoctorReport.self, doctor.stdout, context: doctor)
            let tls = try #require(report.checks.first { $0.name == "tls" })
            #expect(tls.status == "ok" && tls.detail.contains(fingerprint), "\(tls)")
            let later = try coffre.run(["doctor", "--data", data.path, "--json"], env: ["COFFRE_NOW": "2037-01-01T00:00:00Z"])
            let expired = try #require(try decodeJSON(DoctorReport.self, later.stdout, context: later).checks.first { $0.name == "tls" })
            #expect(later.status == 1 && expired.status == "failed" && expired.detail.hasSuffix("expired"), "\(expired)")

            server = try ServerProcess(coffre, data: data, tls: true)
            #expect(server.fingerprint == fingerprint, "a restart keeps the certificate clients pinned")
            #expect(server.stop() == 0)
        }
    }

    @Test("--tls-cert and --tls-key: a certificate authority's chain, checked with --server-ca and the host's name; a pin works too")
    func authoritySigned() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            let ca = tmp.appendingPathComponent("ca.pem"), caKey = tmp.appendingPathComponent("ca.key")
            let leaf = tmp.appendingPathComponent("leaf.pem"), key = tmp.appendingPathComponent("leaf.key")
            let csr = tmp.appendingPathComponent("leaf.csr"), chain = tmp.appendingPathComponent("chain.pem")
            let ext = tmp.appendingPathComponent("leaf.ext")
            try Data("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n".utf8).write(to: ext)
            let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            _ = try openssl(["req", "-x509"] + ec + ["-keyout", caKey.path, "-out", ca.path, "-days", "30", "-subj", "/CN=Coffre test CA",
                             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"])
            _ = try openssl(["req"] + ec + ["-keyout", key.path, "-out", csr.path, "-subj", "/CN=localhost"])
            _ = try openssl(["x509", "-req", "-in", csr.path, "-CA", ca.path, "-CAkey", caKey.path, "-CAcreateserial",
                             "-out", leaf.path, "-days", "30", "-extfile", ext.path])
            try (try Data(contentsOf: leaf) + Data(contentsOf: ca)).write(to: chain)

            let missingKey = try coffre.run(["serve", "--data", tmp.appendingPathComponent("data").path, "--port", "0", "--tls-cert", chain.path])
            #expect(!missingKey.succeeded && missingKey.stderr.contains("[InvalidOption]") && missingKey.stderr.contains("--tls-key"), "\(missingKey)")

            let server = try ServerProcess(coffre, data: tmp.appendingPathComponent("data"),
                                           arguments: ["--tls-cert", chain.path, "--tls-key", key.path], tls: false)
            let leafFingerprint = try opensslFingerprint(leaf)
            #expect(server.url.hasPrefix("https://") && server.fingerprint == leafFingerprint)
            let byName = server.url.replacingOccurrences(of: "127.0.0.1", with: "localhost")
            let trusted = try coffre.run(["vm", "list", "--server-ca", ca.path], env: remote(server, url: byName, [:]))
            #expect(trusted.succeeded, "\(trusted)")
            // The certificate names localhost only: by address, hostname verification refuses it.
            let byAddress = try coffre.run(["vm", "list", "--server-ca", ca.path], env: remote(server, [:]))
            #expect(!byAddress.succeeded && byAddress.stderr.contains("[ServerUnreachable]"), "\(byAddress)")
            let pinned = try coffre.run(["vm", "list", "--fingerprint", try #require(server.fingerprint)], env: remote(server, [:]))
            #expect(pinned.succeeded, "\(pinned)")
            #expect(server.stop() == 0)
        }
    }

    @Test("plain HTTP is refused on an address other than loopback unless --allow-plain-http")
    func plainHTTPOnLoopbackOnly() throws {
        let coffre = try Coffre()
        try withTempDir { tmp in
            let data = tmp.appendingPathComponent("data")
            let refused = try coffre.run(["serve", "--data", data.path, "--host", "0.0.0.0", "--port", "0"])
            #expect(!refused.succeeded && refused.stderr.contains("[InvalidConfiguration]")
                    && refused.stderr.contains("--allow-plain-http"), "\(refused)")
            let allowed = try ServerProcess(coffre, data: data, arguments: ["--host", "0.0.0.0", "--allow-plain-http"], tls: false)
            #expect(allowed.stop() == 0)
        }
    }

    struct JobLine: Decodable { var id: String }
    struct DoctorReport: Decodable {
        var checks: [Check]
        struct Check: Decodable { var name: String; var status: String; var detail: String }
    }
}
