import CoffreCore
@testable import CoffreExtension
import Foundation
import Testing

@Suite("VMSnapshotScriptPluginConfig.json (S1)")
struct ScriptPluginConfigTests {
    /// Azure's template as published, with the fields the issue lists, parsed as-is.
    static let azureTemplate = """
    {
        "pluginName" : "ScriptRunner",
        "preScriptLocation" : "",
        "postScriptLocation" : "",
        "preScriptParams" : ["", ""],
        "postScriptParams" : ["", ""],
        "preScriptNoOfRetries" : 0,
        "postScriptNoOfRetries" : 0,
        "timeoutInSeconds" : 30,
        "continueBackupOnFailure" : true,
        "fsFreezeEnabled" : true,
        "ScriptsExecutionPollTimeSeconds" : 3
    }
    """

    @Test("Azure's template parses unchanged: no scripts, defaults, empty params dropped")
    func azureTemplate() throws {
        let config = try ScriptPluginConfig.parse(Data(Self.azureTemplate.utf8))
        #expect(config == ScriptPluginConfig())
        #expect(config.preScriptLocation.isEmpty && config.postScriptLocation.isEmpty)
        #expect(config.preScriptParams.isEmpty && config.postScriptParams.isEmpty)
        #expect(config.timeoutInSeconds == 30 && config.continueBackupOnFailure && config.fsFreezeEnabled)
        #expect(config.scriptsExecutionPollTimeSeconds == 3)
    }

    @Test("Every field is read; unknown keys are ignored; empty strings in params are ignored")
    func allFields() throws {
        let text = """
        {"pluginName":"ScriptRunner","preScriptLocation":"/opt/pre.sh","postScriptLocation":"/opt/post.sh",
         "preScriptParams":["a","","b c"],"postScriptParams":["","x"],"preScriptNoOfRetries":2,"postScriptNoOfRetries":1,
         "timeoutInSeconds":90,"continueBackupOnFailure":false,"fsFreezeEnabled":false,"ScriptsExecutionPollTimeSeconds":5,
         "thawDeadlineSeconds":120,"fsFreezeSkipMounts":["/scratch"],"someFutureAzureKey":{"nested":[1,2]}}
        """
        let config = try ScriptPluginConfig.parse(Data(text.utf8))
        #expect(config.preScriptLocation == "/opt/pre.sh")
        #expect(config.postScriptLocation == "/opt/post.sh")
        #expect(config.preScriptParams == ["a", "b c"])
        #expect(config.postScriptParams == ["x"])
        #expect(config.preScriptNoOfRetries == 2 && config.postScriptNoOfRetries == 1)
        #expect(config.timeoutInSeconds == 90)
        #expect(!config.continueBackupOnFailure && !config.fsFreezeEnabled)
        #expect(config.scriptsExecutionPollTimeSeconds == 5)
        #expect(config.thawDeadlineSeconds == 120)
        #expect(config.fsFreezeSkipMounts == ["/scratch"])
    }

    @Test("Absent optional keys take the defaults (timeout 30, continue true, freeze true, poll 3)")
    func defaults() throws {
        let config = try ScriptPluginConfig.parse(Data(#"{"preScriptLocation":"","postScriptLocation":""}"#.utf8))
        #expect(config.timeoutInSeconds == 30)
        #expect(config.continueBackupOnFailure)
        #expect(config.fsFreezeEnabled)
        #expect(config.scriptsExecutionPollTimeSeconds == 3)
        #expect(config.preScriptNoOfRetries == 0 && config.postScriptNoOfRetries == 0)
        #expect(config.pluginName == "ScriptRunner")
    }

    @Test("Wrong types, missing location keys, invalid JSON and nonsense values are rejected", arguments: [
        (#"{"postScriptLocation":""}"#, "preScriptLocation"),
        (#"{"preScriptLocation":""}"#, "postScriptLocation"),
        (#"{"preScriptLocation":"","postScriptLocation":"","timeoutInSeconds":"30"}"#, "timeoutInSeconds"),
        (#"{"preScriptLocation":"","postScriptLocation":"","continueBackupOnFailure":"yes"}"#, "continueBackupOnFailure"),
        (#"{"preScriptLocation":"","postScriptLocation":"","fsFreezeEnabled":1}"#, "fsFreezeEnabled"),
        (#"{"preScriptLocation":"","postScriptLocation":"","preScriptParams":"-v"}"#, "preScriptParams"),
        (#"{"preScriptLocation":"","postScriptLocation":"","postScriptParams":[1]}"#, "postScriptParams"),
        (#"{"preScriptLocation":5,"postScriptLocation":""}"#, "preScriptLocation"),
        (#"{"preScriptLocation":"","postScriptLocation":"","preScriptNoOfRetries":true}"#, "preScriptNoOfRetries"),
        (#"{"preScriptLocation":"","postScriptLocation":"","ScriptsExecutionPollTimeSeconds":"3"}"#, "ScriptsExecutionPollTimeSeconds"),
        (#"{"preScriptLocation":"","postScriptLocation":"","preScriptNoOfRetries":-1}"#, "negative"),
        (#"{"preScriptLocation":"","postScriptLocation":"","timeoutInSeconds":0}"#, "timeoutInSeconds"),
        (#"{"preScriptLocation":"pre.sh","postScriptLocation":""}"#, "full path"),
        (#"{"pluginName":"OraclePlugin","preScriptLocation":"","postScriptLocation":""}"#, "pluginName"),
        (#"{"preScriptLocation":"", "postScriptLocation":"",}"#, "not valid JSON"),
        (#"["preScriptLocation"]"#, ""),
        ("", "not valid JSON"),
    ])
    func rejected(text: String, mentions: String) {
        #expect {
            _ = try ScriptPluginConfig.parse(Data(text.utf8))
        } throws: { error in
            guard let defect = error as? ConfigDefect else { return false }
            return mentions.isEmpty || defect.detail.contains(mentions)
        }
    }

    @Test("The poll time is clamped to 1–5 seconds")
    func pollClamp() throws {
        for (given, used) in [(0, 1), (1, 1), (3, 3), (5, 5), (9, 5)] {
            let text = #"{"preScriptLocation":"","postScriptLocation":"","ScriptsExecutionPollTimeSeconds":\#(given)}"#
            #expect(try ScriptPluginConfig.parse(Data(text.utf8)).retryPauseSeconds == used)
        }
    }
}

@Suite("VMSnapshotPluginHost.conf")
struct PluginHostFileTests {
    @Test("Azure's plugin host file: a [pre_post] section naming ScriptRunner and its config")
    func azureLayout() throws {
        let text = """
        [pre_post]
        timeoutInSeconds: 1800
        numberOfPlugins: 1
        pluginName0: ScriptRunner
        pluginPath0: main/tempPlugin
        pluginConfigPath0: /etc/azure/VMSnapshotScriptPluginConfig.json
        """
        let file = try PluginHostFile.parse(text)
        #expect(file.timeoutInSeconds == 1800)
        #expect(file.scriptRunnerConfigPath == "/etc/azure/VMSnapshotScriptPluginConfig.json")
    }

    @Test("A damaged plugin host file is refused", arguments: [
        "numberOfPlugins: 1\n",
        "[other]\nkey = value\n",
        "[pre_post]\ngarbage line\n",
        "[pre_post\nnumberOfPlugins = 0\n",
        "[pre_post]\nnumberOfPlugins = one\n",
        "[pre_post]\ntimeoutInSeconds = -5\n",
        "[pre_post]\nnumberOfPlugins = 1\npluginName0 = ScriptRunner\n",
    ])
    func damaged(text: String) {
        #expect(throws: ConfigDefect.self) { _ = try PluginHostFile.parse(text) }
    }
}
