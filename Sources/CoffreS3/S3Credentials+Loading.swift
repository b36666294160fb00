public import CoffreCore
import Foundation

extension S3Credentials {
    /// The credentials of a vault: from `file` (an AWS-style credentials file, section
    /// `profile`, else `AWS_PROFILE`, else `default`) when one is named, else from
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    public static func load(file: String?, profile: String? = nil,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws -> S3Credentials {
        if let file {
            let section = profile ?? environment["AWS_PROFILE"] ?? "default"
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw CoffreError.s3CredentialsMissing("the credentials file \(file) cannot be read")
            }
            let values = parseINI(text)[section] ?? [:]
            guard let id = values["aws_access_key_id"], let secret = values["aws_secret_access_key"],
                  !id.isEmpty, !secret.isEmpty else {
                throw CoffreError.s3CredentialsMissing(
                    "the section [\(section)] of \(file) has no aws_access_key_id and aws_secret_access_key")
            }
            return S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: values["aws_session_token"])
        }
        guard let id = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"],
              !id.isEmpty, !secret.isEmpty else {
            throw CoffreError.s3CredentialsMissing("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set")
        }
        let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        return S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: token)
    }

    /// `[section]` lines and `key = value` lines; `#` and `;` start comments.
    static func parseINI(_ text: String) -> [String: [String: String]] {
        var sections: [String: [String: String]] = [:]
        var current = ""
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                current = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                if current.hasPrefix("profile ") { current = String(current.dropFirst("profile ".count)) }
                continue
            }
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            sections[current, default: [:]][key] = value
        }
        return sections
    }
}

extension CoffreError {
    public static func s3CredentialsMissing(_ detail: String) -> CoffreError {
        CoffreError(.s3AccessDenied, "No S3 credentials: \(detail)",
                    workaround: "Export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a credentials file with "
                        + "--credentials (\"credentialsFile\" in coffre.json)")
    }
}
