public import CoffreCore
import CoffreSystem
import Foundation

/// The guest's script configuration as `prepare` found it (S1, S2), kept in the agent's
/// state so that `release` and the watchdog run the post-script `prepare` saw.
public struct GuestConfiguration: Codable, Sendable, Equatable {
    /// Why scripts cannot run at all; the backup then falls back as S4 says.
    public enum Problem: Codable, Sendable, Equatable {
        /// VMSnapshotScriptPluginConfig.json is invalid (IncorrectJSONConfigFile).
        case incorrectJSON(String)
        /// VMSnapshotPluginHost.conf is damaged or insecure (IncorrectPluginhostFile).
        case incorrectPluginHost(String)
        /// The configuration file is not root's with mode 600 or 400 (S2).
        case insecureConfig(String)
    }

    /// The settings in force: the file's, or the defaults when there is none or it is unusable.
    public var config: ScriptPluginConfig
    /// Guest path of the file read; nil when there is none.
    public var configFile: String?
    /// Why scripts are off; nil when they may run.
    public var problem: Problem?
    /// The plugin host file's cap on a script's timeout.
    public var timeoutCap: Int?

    /// The folder named in timeout messages: the one the file came from, else `/etc/coffre`.
    public var configDirectory: String {
        configFile.map { ($0 as NSString).deletingLastPathComponent } ?? "/etc/coffre"
    }

    /// Seconds a script gets for all its attempts.
    public var scriptTimeout: Int { min(config.timeoutInSeconds, timeoutCap ?? Int.max) }

    /// Reads the configuration under the guest's root: the plugin host file if any, then
    /// `VMSnapshotScriptPluginConfig.json` from `/etc/coffre/`, else `/etc/azure/`.
    public static func load(_ paths: GuestPaths) -> GuestConfiguration {
        var result = GuestConfiguration(config: ScriptPluginConfig())
        var configCandidates = paths.configDirectories.map { $0 + "/" + ScriptPluginConfig.fileName }

        if let hostFile = paths.configDirectories.map({ $0 + "/" + PluginHostFile.fileName }).first(where: FileIO.exists) {
            let shown = paths.guest(hostFile) ?? hostFile
            guard let status = FileIO.status(hostFile), status.kind == .regular else {
                result.problem = .incorrectPluginHost("\(shown) is not a regular file")
                return result
            }
            // Azure's own check: root's, and nobody else may write it.
            guard status.uid == 0, status.permissions & 0o022 == 0 else {
                result.problem = .incorrectPluginHost(
                    "\(shown) must be owned by root and writable by root only; it is owned by uid \(status.uid) with mode \(octal(status.permissions))")
                return result
            }
            do {
                let data = try FileIO.readExistingFile(hostFile)
                let host = try PluginHostFile.parse(String(decoding: data, as: UTF8.self))
                result.timeoutCap = host.timeoutInSeconds
                if let configPath = host.scriptRunnerConfigPath { configCandidates = [paths.host(configPath)] }
            } catch let error as ConfigDefect {
                result.problem = .incorrectPluginHost("\(shown): \(error.detail)")
                return result
            } catch {
                result.problem = .incorrectPluginHost("\(shown) cannot be read: \(error)")
                return result
            }
        }

        guard let file = configCandidates.first(where: FileIO.exists) else { return result }
        let shown = paths.guest(file) ?? file
        result.configFile = shown
        guard let status = FileIO.status(file), status.kind == .regular else {
            result.problem = .incorrectJSON("\(shown) is not a regular file")
            return result
        }
        guard status.uid == 0, status.permissions == 0o600 || status.permissions == 0o400 else {
            result.problem = .insecureConfig(
                "\(shown) must be owned by root with mode 600 or 400; it is owned by uid \(status.uid) with mode \(octal(status.permissions))")
            return result
        }
        do {
            result.config = try ScriptPluginConfig.parse(Data(try FileIO.readExistingFile(file)))
        } catch let error as ConfigDefect {
            result.problem = .incorrectJSON("\(shown): \(error.detail)")
        } catch {
            result.problem = .incorrectJSON("\(shown) cannot be read: \(error)")
        }
        return result
    }

    /// The configured guest path of a phase's script; nil when none is configured or scripts are off.
    public func scriptLocation(_ phase: ScriptRun.Phase) -> String? {
        guard problem == nil else { return nil }
        let location = phase == .pre ? config.preScriptLocation : config.postScriptLocation
        return location.isEmpty ? nil : location
    }
}

func octal(_ permissions: UInt32) -> String { String(permissions, radix: 8) }
