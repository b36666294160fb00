import Foundation

/// Azure's optional `VMSnapshotPluginHost.conf`, an INI file whose `[pre_post]` section lists
/// plugins (`numberOfPlugins`, `pluginName0`, `pluginPath0`, `pluginConfigPath0`, …) and a
/// `timeoutInSeconds` cap. Coffre honours it when present so that such a setup works
/// unchanged; a damaged one is IncorrectPluginhostFile and no script runs.
public struct PluginHostFile: Sendable, Equatable {
    /// The file's name next to the script configuration.
    public static let fileName = "VMSnapshotPluginHost.conf"

    /// Upper bound on each script's timeout, when the file sets one.
    public var timeoutInSeconds: Int?
    /// The guest path of the ScriptRunner plugin's configuration, when the file names one.
    public var scriptRunnerConfigPath: String?

    /// Parses the file's text.
    /// - Throws: a sentence saying what is damaged.
    public static func parse(_ text: String) throws(ConfigDefect) -> PluginHostFile {
        var sections: [String: [String: String]] = [:]
        var current: String?
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else {
                    throw ConfigDefect("line \(index + 1) is not a [section] header")
                }
                let name = String(line.dropFirst().dropLast())
                current = name
                sections[name, default: [:]] = sections[name] ?? [:]
                continue
            }
            guard let section = current else {
                throw ConfigDefect("line \(index + 1) comes before any [section]")
            }
            guard let separator = line.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
                throw ConfigDefect("line \(index + 1) is neither \"key = value\" nor \"key: value\"")
            }
            let key = line[..<separator].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: separator)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else { throw ConfigDefect("line \(index + 1) has no key") }
            sections[section]![key] = value
        }
        guard let prePost = sections["pre_post"] else {
            throw ConfigDefect("it has no [pre_post] section")
        }
        var result = PluginHostFile()
        if let text = prePost["timeoutInSeconds"] {
            guard let value = Int(text), value > 0 else {
                throw ConfigDefect("timeoutInSeconds is \"\(text)\", not a positive number")
            }
            result.timeoutInSeconds = value
        }
        if let text = prePost["numberOfPlugins"] {
            guard let count = Int(text), count >= 0 else {
                throw ConfigDefect("numberOfPlugins is \"\(text)\", not a number")
            }
            for index in 0..<count {
                guard let name = prePost["pluginName\(index)"], let configPath = prePost["pluginConfigPath\(index)"] else {
                    throw ConfigDefect("plugin \(index) lacks pluginName\(index) or pluginConfigPath\(index)")
                }
                if name == ScriptPluginConfig.scriptRunner { result.scriptRunnerConfigPath = configPath }
            }
        }
        return result
    }
}
