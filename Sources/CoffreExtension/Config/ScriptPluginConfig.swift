public import Foundation

/// `VMSnapshotScriptPluginConfig.json` (S1): Azure's pre/post-script configuration, read
/// unchanged, plus two optional Coffre keys that Azure's extension ignores.
public struct ScriptPluginConfig: Codable, Sendable, Equatable {
    /// The file's name in `/etc/coffre/` or `/etc/azure/`.
    public static let fileName = "VMSnapshotScriptPluginConfig.json"
    /// The only plugin the Azure template names, and the only one Coffre runs.
    public static let scriptRunner = "ScriptRunner"

    /// Must stay `ScriptRunner` (seed 001: "leave this field as it is").
    public var pluginName: String
    /// Guest path of the pre-script; empty when there is none.
    public var preScriptLocation: String
    /// Guest path of the post-script; empty when there is none.
    public var postScriptLocation: String
    /// Arguments of the pre-script, empty strings dropped.
    public var preScriptParams: [String]
    /// Arguments of the post-script, empty strings dropped.
    public var postScriptParams: [String]
    /// Extra attempts after a failed pre-script; 0 means a single attempt.
    public var preScriptNoOfRetries: Int
    /// Extra attempts after a failed post-script; 0 means a single attempt.
    public var postScriptNoOfRetries: Int
    /// Time one script gets for all its attempts together.
    public var timeoutInSeconds: Int
    /// Whether a failed script lowers the point's consistency (true) or fails the backup (false).
    public var continueBackupOnFailure: Bool
    /// Whether file systems are frozen around the snapshot.
    public var fsFreezeEnabled: Bool
    /// Pause before a retry, 1–5 s (values outside are clamped).
    public var scriptsExecutionPollTimeSeconds: Int
    /// Coffre: seconds after the freeze at which the watchdog thaws by itself.
    public var thawDeadlineSeconds: Int?
    /// Coffre: guest mount points never frozen.
    public var fsFreezeSkipMounts: [String]

    /// The configuration an absent file amounts to: no scripts, freeze on.
    public init(
        pluginName: String = scriptRunner, preScriptLocation: String = "", postScriptLocation: String = "",
        preScriptParams: [String] = [], postScriptParams: [String] = [],
        preScriptNoOfRetries: Int = 0, postScriptNoOfRetries: Int = 0, timeoutInSeconds: Int = 30,
        continueBackupOnFailure: Bool = true, fsFreezeEnabled: Bool = true,
        scriptsExecutionPollTimeSeconds: Int = 3, thawDeadlineSeconds: Int? = nil, fsFreezeSkipMounts: [String] = []
    ) {
        self.pluginName = pluginName
        self.preScriptLocation = preScriptLocation
        self.postScriptLocation = postScriptLocation
        self.preScriptParams = preScriptParams.filter { !$0.isEmpty }
        self.postScriptParams = postScriptParams.filter { !$0.isEmpty }
        self.preScriptNoOfRetries = preScriptNoOfRetries
        self.postScriptNoOfRetries = postScriptNoOfRetries
        self.timeoutInSeconds = timeoutInSeconds
        self.continueBackupOnFailure = continueBackupOnFailure
        self.fsFreezeEnabled = fsFreezeEnabled
        self.scriptsExecutionPollTimeSeconds = scriptsExecutionPollTimeSeconds
        self.thawDeadlineSeconds = thawDeadlineSeconds
        self.fsFreezeSkipMounts = fsFreezeSkipMounts
    }

    enum CodingKeys: String, CodingKey {
        case pluginName, preScriptLocation, postScriptLocation, preScriptParams, postScriptParams
        case preScriptNoOfRetries, postScriptNoOfRetries, timeoutInSeconds, continueBackupOnFailure
        case fsFreezeEnabled, thawDeadlineSeconds, fsFreezeSkipMounts
        case scriptsExecutionPollTimeSeconds = "ScriptsExecutionPollTimeSeconds"
    }

    /// Decodes strictly: a key of the wrong type is an error, an unknown key is ignored, and
    /// both location keys must be present (an empty string means "no script").
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        guard c.contains(.preScriptLocation) else {
            throw DecodingError.keyNotFound(CodingKeys.preScriptLocation, .init(codingPath: [], debugDescription: "missing"))
        }
        guard c.contains(.postScriptLocation) else {
            throw DecodingError.keyNotFound(CodingKeys.postScriptLocation, .init(codingPath: [], debugDescription: "missing"))
        }
        self.init(
            pluginName: try c.decodeIfPresent(String.self, forKey: .pluginName) ?? Self.scriptRunner,
            preScriptLocation: try c.decode(String.self, forKey: .preScriptLocation),
            postScriptLocation: try c.decode(String.self, forKey: .postScriptLocation),
            preScriptParams: try c.decodeIfPresent([String].self, forKey: .preScriptParams) ?? [],
            postScriptParams: try c.decodeIfPresent([String].self, forKey: .postScriptParams) ?? [],
            preScriptNoOfRetries: try c.decodeIfPresent(Int.self, forKey: .preScriptNoOfRetries) ?? 0,
            postScriptNoOfRetries: try c.decodeIfPresent(Int.self, forKey: .postScriptNoOfRetries) ?? 0,
            timeoutInSeconds: try c.decodeIfPresent(Int.self, forKey: .timeoutInSeconds) ?? 30,
            continueBackupOnFailure: try c.decodeIfPresent(Bool.self, forKey: .continueBackupOnFailure) ?? true,
            fsFreezeEnabled: try c.decodeIfPresent(Bool.self, forKey: .fsFreezeEnabled) ?? true,
            scriptsExecutionPollTimeSeconds: try c.decodeIfPresent(Int.self, forKey: .scriptsExecutionPollTimeSeconds) ?? 3,
            thawDeadlineSeconds: try c.decodeIfPresent(Int.self, forKey: .thawDeadlineSeconds),
            fsFreezeSkipMounts: try c.decodeIfPresent([String].self, forKey: .fsFreezeSkipMounts) ?? []
        )
    }

    /// Parses the file's bytes.
    /// - Throws: a sentence saying what is wrong, for IncorrectJSONConfigFile's detail.
    public static func parse(_ data: Data) throws(ConfigDefect) -> ScriptPluginConfig {
        // Foundation's decoder takes `[1,]` and `{"a":1,}`; Azure's (Python) refuses them, and
        // a file Azure refuses must not work here only to break when moved back.
        if let offset = trailingCommaOffset(data) {
            throw ConfigDefect("the file is not valid JSON (a comma before a closing bracket at byte \(offset))")
        }
        let config: ScriptPluginConfig
        do {
            config = try JSONDecoder().decode(ScriptPluginConfig.self, from: data)
        } catch let error as DecodingError {
            throw ConfigDefect(Self.describe(error))
        } catch {
            throw ConfigDefect("\(error)")
        }
        if config.pluginName != scriptRunner {
            throw ConfigDefect("pluginName is \"\(config.pluginName)\"; it must stay \"\(scriptRunner)\"")
        }
        if config.preScriptNoOfRetries < 0 || config.postScriptNoOfRetries < 0 {
            throw ConfigDefect("the number of retries cannot be negative")
        }
        if config.timeoutInSeconds <= 0 {
            throw ConfigDefect("timeoutInSeconds must be a positive number of seconds")
        }
        if let thaw = config.thawDeadlineSeconds, thaw <= 0 {
            throw ConfigDefect("thawDeadlineSeconds must be a positive number of seconds")
        }
        for (key, location) in [("preScriptLocation", config.preScriptLocation), ("postScriptLocation", config.postScriptLocation)]
        where !location.isEmpty && !location.hasPrefix("/") {
            throw ConfigDefect("\(key) must be a full path, not \"\(location)\"")
        }
        return config
    }

    /// The poll time as used: clamped to 1–5 seconds.
    public var retryPauseSeconds: Int { min(max(scriptsExecutionPollTimeSeconds, 1), 5) }

    /// The offset of the first comma followed (after white space) by `]` or `}`, outside strings.
    static func trailingCommaOffset(_ data: Data) -> Int? {
        var inString = false, escaped = false
        var lastComma: Int?
        for (offset, byte) in data.enumerated() {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): continue
            case UInt8(ascii: ","): lastComma = offset; continue
            case UInt8(ascii: "]"), UInt8(ascii: "}"): if let lastComma { return lastComma }
            case UInt8(ascii: "\""): inString = true
            default: break
            }
            lastComma = nil
        }
        return nil
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, _):
            return "the key \(key.stringValue) is missing"
        case .typeMismatch(let type, let context):
            return "\(path(context)) is not of type \(type)"
        case .valueNotFound(let type, let context):
            return "\(path(context)) is null where \(type) is expected"
        case .dataCorrupted(let context):
            let at = path(context)
            return at.isEmpty ? "the file is not valid JSON" : "\(at) has an invalid value"
        @unknown default:
            return "\(error)"
        }
    }
}

/// What makes a configuration file unusable, in one sentence.
public struct ConfigDefect: Error, Sendable, Equatable {
    /// The sentence, e.g. "timeoutInSeconds is not of type Int".
    public var detail: String
    /// Wraps the sentence.
    public init(_ detail: String) { self.detail = detail }
}
