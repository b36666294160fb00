import CoffreCore
@testable import CoffreExtension
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Finding and trusting the configuration (S1, S2)")
struct GuestConfigurationTests {
    @Test("No file: no scripts, freeze on, no problem")
    func none() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        let loaded = GuestConfiguration.load(GuestPaths(root: root.path))
        #expect(loaded.problem == nil && loaded.configFile == nil)
        #expect(loaded.scriptLocation(.pre) == nil && loaded.config.fsFreezeEnabled)
    }

    @Test("/etc/azure is read when /etc/coffre has none; /etc/coffre wins when both exist")
    func lookupOrder() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.config(["preScriptLocation": "/azure.sh"], folder: "/etc/azure")
        var loaded = GuestConfiguration.load(GuestPaths(root: root.path))
        #expect(loaded.configFile == "/etc/azure/VMSnapshotScriptPluginConfig.json")
        #expect(loaded.scriptLocation(.pre) == "/azure.sh")
        #expect(loaded.configDirectory == "/etc/azure")
        try root.config(["preScriptLocation": "/coffre.sh"])
        loaded = GuestConfiguration.load(GuestPaths(root: root.path))
        #expect(loaded.scriptLocation(.pre) == "/coffre.sh")
        #expect(loaded.configDirectory == "/etc/coffre")
    }

    @Test("The config must be root's with mode 600 or 400", arguments: [
        (mode_t(0o600), uid_t(0), true), (0o400, 0, true), (0o644, 0, false), (0o640, 0, false),
        (0o700, 0, false), (0o600, 1000, false),
    ])
    func configPermissions(mode: mode_t, uid: uid_t, trusted: Bool) throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.config(["preScriptLocation": "/pre.sh", "continueBackupOnFailure": false], mode: mode, uid: uid)
        let loaded = GuestConfiguration.load(GuestPaths(root: root.path))
        if trusted {
            #expect(loaded.problem == nil)
            #expect(!loaded.config.continueBackupOnFailure)
        } else {
            guard case .insecureConfig(let detail) = loaded.problem else {
                Issue.record("expected insecureConfig, got \(String(describing: loaded.problem))")
                return
            }
            #expect(detail.contains("mode \(String(mode, radix: 8))") && detail.contains("uid \(uid)"))
            // An untrusted file's settings are not used either.
            #expect(loaded.config.continueBackupOnFailure)
            #expect(loaded.scriptLocation(.pre) == nil)
        }
    }

    @Test("A plugin host file can point at another config and cap the timeout")
    func pluginHostRedirect() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.config(["preScriptLocation": "/default.sh"])
        try root.config(["preScriptLocation": "/elsewhere.sh", "timeoutInSeconds": 300], folder: "/opt/app")
        try root.write("/etc/azure/VMSnapshotPluginHost.conf", """
            [pre_post]
            timeoutInSeconds: 120
            numberOfPlugins: 1
            pluginName0: ScriptRunner
            pluginPath0: main
            pluginConfigPath0: /opt/app/VMSnapshotScriptPluginConfig.json
            """, mode: 0o644)
        let loaded = GuestConfiguration.load(GuestPaths(root: root.path))
        #expect(loaded.problem == nil)
        #expect(loaded.scriptLocation(.pre) == "/elsewhere.sh")
        #expect(loaded.scriptTimeout == 120)
    }

    @Test("A plugin host file others may write is not trusted")
    func pluginHostInsecure() throws {
        let root = try GuestRoot()
        defer { root.cleanUp() }
        try root.write("/etc/coffre/VMSnapshotPluginHost.conf", "[pre_post]\n", mode: 0o666)
        guard case .incorrectPluginHost(let detail) = GuestConfiguration.load(GuestPaths(root: root.path)).problem else {
            Issue.record("expected incorrectPluginHost")
            return
        }
        #expect(detail.contains("666"))
    }
}
