import CoffreCore
import CoffreStorage
import Foundation
import Testing

@testable import CoffreLocalFabric

/// A local fabric in a temporary folder.
final class FabricFolder: @unchecked Sendable {
    let root: String
    let fabric: LocalFabric

    init(agent: [String]? = nil, agentTimeout: Duration = .seconds(60)) throws {
        root = NSTemporaryDirectory() + "coffre-fabric-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var configuration = LocalFabric.Configuration(root: root)
        configuration.name = "lab"
        configuration.region = "eu-west"
        if let agent { configuration.agentCommand = agent }
        configuration.agentTimeout = agentTimeout
        fabric = LocalFabric(configuration: configuration)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// Writes `<root>/<path>/vm.json` and the disks (given content, then sparse to `size`).
    @discardableResult
    func addVM(_ path: String, json: [String: Any], disks: [String: (bytes: [UInt8], size: Int64)] = [:]) throws -> String {
        let folder = root + "/" + path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: folder + "/vm.json"))
        for (name, disk) in disks {
            _ = FileManager.default.createFile(atPath: folder + "/" + name, contents: Data(disk.bytes))
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: folder + "/" + name))
            try handle.truncate(atOffset: UInt64(disk.size))
            try handle.close()
        }
        return folder
    }

    @discardableResult
    func addSimpleVM(_ path: String, name: String? = nil, power: String = "running", agent: String? = "2.1",
                     bytes: [UInt8] = Array(repeating: 7, count: 4096), size: Int64 = 1 << 20) throws -> String {
        var json: [String: Any] = ["disks": ["os.img"], "powerState": power]
        if let name { json["name"] = name }
        if let agent { json["agentVersion"] = agent }
        return try addVM(path, json: json, disks: ["os.img": (bytes, size)])
    }
}

func contents(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

func readAll(_ device: any BlockDevice) throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: Int(device.size))
    try bytes.withUnsafeMutableBytes { try device.read(into: $0, at: 0) }
    return bytes
}

func expectCode(_ code: CoffreError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected \(code), nothing thrown", sourceLocation: sourceLocation)
    } catch let error as CoffreError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        #expect(error.workaround?.isEmpty == false, "no workaround in \(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct DiscoveryTests {
    @Test func foldersBecomeVMsWithCloudServiceFromTheParentFolder() async throws {
        let f = try FabricFolder()
        try f.addVM("prod/web", json: ["osType": "windows", "powerState": "stopped", "agentVersion": "2.1",
                                       "disks": ["os.img", "data1.img"]],
                    disks: ["os.img": ([1], 1 << 20), "data1.img": ([], 3 << 20)])
        try f.addSimpleVM("solo")
        try f.addSimpleVM("a/b/deep")
        try f.addSimpleVM("a/b/c/too-deep")
        try f.addVM("test/web", json: ["name": "web", "cloudService": "staging", "region": "us-east", "disks": ["os.img"],
                                       "unsupportedFeatures": ["shared disk"], "powerState": "hibernating"],
                    disks: ["os.img": ([], 4096)])
        try FileManager.default.createDirectory(atPath: f.root + "/.coffre-snapshots/x", withIntermediateDirectories: true)

        let vms = try await f.fabric.discover()
        #expect(vms.map(\.key.description).sorted() == ["b/deep", "lab/solo", "prod/web", "staging/web"])
        let web = try #require(vms.first { $0.key == VMKey(cloudService: "prod", name: "web") })
        #expect(web.osType == "windows" && web.powerState == .stopped && web.agentVersion == "2.1")
        #expect(web.region == "eu-west" && web.extensionVersion == nil)
        #expect(web.disks == [VirtualDisk(name: "os.img", size: 1 << 20, isOSDisk: true),
                              VirtualDisk(name: "data1.img", size: 3 << 20, isOSDisk: false)])
        let staging = try #require(vms.first { $0.cloudService == "staging" })
        #expect(staging.region == "us-east" && staging.unsupportedFeatures == ["shared disk"])
        #expect(staging.powerState == .unknown && staging.agentVersion == nil)
        #expect(try await f.fabric.vm(VMKey(cloudService: "lab", name: "solo"))?.name == "solo")
        #expect(try await f.fabric.vm(VMKey(cloudService: "lab", name: "nothing")) == nil)
    }

    @Test func brokenDefinitionsAreReportedAsUnsupportedNotHidden() async throws {
        let f = try FabricFolder()
        try FileManager.default.createDirectory(atPath: f.root + "/prod/broken", withIntermediateDirectories: true)
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: f.root + "/prod/broken/vm.json"))
        try f.addVM("prod/nodisk", json: ["disks": ["os.img"]])
        try f.addVM("prod/baddisk", json: ["disks": ["../escape"]])
        try f.addSimpleVM("prod/twin")
        try f.addSimpleVM("other/twin", name: nil)
        try f.addVM("other/twin2", json: ["name": "twin", "cloudService": "prod", "disks": ["os.img"]],
                    disks: ["os.img": ([], 4096)])

        let vms = Dictionary(uniqueKeysWithValues: try await f.fabric.discover().map { ($0.key.description, $0) })
        #expect(vms["prod/broken"]?.unsupportedFeatures.first?.contains("is not JSON") == true)
        #expect(vms["prod/broken"]?.disks == [])
        #expect(vms["prod/nodisk"]?.unsupportedFeatures.first?.contains("is missing or not a regular file") == true)
        #expect(vms["prod/baddisk"]?.unsupportedFeatures.first?.contains("not a valid disk name") == true)
        #expect(vms["other/twin"]?.unsupportedFeatures == [])
        #expect(vms["prod/twin"]?.unsupportedFeatures.first?.contains("same name and cloud service") == true)
    }

    @Test func missingRootIsUnreachable() async throws {
        let f = try FabricFolder()
        try FileManager.default.removeItem(atPath: f.root)
        await expectCode(.fabricUnreachable) { _ = try await f.fabric.discover() }
    }
}

@Suite struct SnapshotTests {
    @Test func runningVMIsCopiedAtThatInstantWithHolesKept() async throws {
        let f = try FabricFolder()
        let content = (0..<8192).map { UInt8($0 % 251) }
        let folder = try f.addSimpleVM("prod/web", bytes: content, size: 8 << 20)
        let key = VMKey(cloudService: "prod", name: "web")

        let snapshot = try await f.fabric.makeSnapshot(of: key, id: "job-1")
        // The guest keeps writing after the snapshot: the snapshot does not see it.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: folder + "/os.img"))
        try handle.write(contentsOf: Data(repeating: 0xFF, count: 4096))
        try handle.close()

        #expect(snapshot.disks.map(\.name) == ["os.img"])
        let bytes = try readAll(snapshot.disks[0])
        #expect(bytes.count == 8 << 20)
        #expect(Array(bytes[0..<8192]) == content)
        #expect(bytes[8192...].allSatisfy { $0 == 0 })
        if snapshot.cost.hasPrefix("reflink") {
            #expect(snapshot.bytesCopied == 0)
        } else {
            // Only the data extent was copied, not the 8 MiB hole.
            #expect(snapshot.bytesCopied > 0 && snapshot.bytesCopied < 1 << 20, "\(snapshot.cost)")
            #expect(snapshot.cost.contains("copied"))
        }
        let copy = f.root + "/.coffre-snapshots/job-1"
        #expect(FileManager.default.fileExists(atPath: copy + "/os.img"))
        try await snapshot.delete()
        #expect(!FileManager.default.fileExists(atPath: copy))
    }

    @Test func stoppedVMIsReadInPlace() async throws {
        let f = try FabricFolder()
        try f.addSimpleVM("prod/web", power: "stopped")
        let snapshot = try await f.fabric.makeSnapshot(of: VMKey(cloudService: "prod", name: "web"), id: "job-2")
        #expect(snapshot.bytesCopied == 0)
        #expect(snapshot.cost.contains("stopped"))
        #expect(!FileManager.default.fileExists(atPath: f.root + "/.coffre-snapshots/job-2"))
        #expect(Array(try readAll(snapshot.disks[0])[0..<4096]) == Array(repeating: 7, count: 4096))
        try await snapshot.delete()
        #expect(FileManager.default.fileExists(atPath: f.root + "/prod/web/os.img"))
    }

    @Test func leftoverSnapshotsAreRemovedAndUnknownVMsRefused() async throws {
        let f = try FabricFolder()
        try f.addSimpleVM("prod/web")
        let key = VMKey(cloudService: "prod", name: "web")
        _ = try await f.fabric.makeSnapshot(of: key, id: "job-3")  // the job "was killed" before delete()
        try await f.fabric.removeSnapshot(of: key, id: "job-3")
        try await f.fabric.removeSnapshot(of: key, id: "job-3")
        #expect(!FileManager.default.fileExists(atPath: f.root + "/.coffre-snapshots/job-3"))
        await expectCode(.vmNotFound) { _ = try await f.fabric.makeSnapshot(of: VMKey(cloudService: "prod", name: "gone"), id: "job-4") }
    }
}

@Suite struct RestoreTargetTests {
    let original = DiscoveredVM(name: "web", cloudService: "prod", region: "eu-west", agentVersion: "2.1",
                                disks: [VirtualDisk(name: "os.img", size: 4096, isOSDisk: true)])

    @Test func newVMAppearsWhole() async throws {
        let f = try FabricFolder()
        try f.addSimpleVM("prod/web")
        let target = try await f.fabric.makeRestoreTarget(.newVM(name: "web-restored", original: original))
        try Data(repeating: 9, count: 4096).write(to: URL(fileURLWithPath: target.directory + "/os.img"))
        // Not visible before commit.
        #expect(try await f.fabric.discover().count == 1)
        let restored = try await target.commit()
        let key = restored.key
        #expect(key == VMKey(cloudService: "prod", name: "web-restored"))
        #expect(restored.files == [f.root + "/prod/web-restored/os.img"] && restored.notes.isEmpty)
        let vm = try #require(try await f.fabric.vm(key))
        #expect(vm.powerState == .stopped && vm.disks.map(\.name) == ["os.img"] && vm.agentVersion == "2.1")
        #expect(try contents(f.root + "/prod/web-restored/os.img") == Array(repeating: 9, count: 4096))
        await expectCode(.vmAlreadyExists) { _ = try await f.fabric.makeRestoreTarget(.newVM(name: "web-restored", original: original)) }
        await expectCode(.vmAlreadyExists) { _ = try await f.fabric.makeRestoreTarget(.newVM(name: "web", original: original)) }
    }

    @Test func abortAndIncompleteRestoresLeaveNothing() async throws {
        let f = try FabricFolder()
        try f.addSimpleVM("prod/web")
        let aborted = try await f.fabric.makeRestoreTarget(.newVM(name: "copy", original: original))
        try Data([1]).write(to: URL(fileURLWithPath: aborted.directory + "/os.img"))
        await aborted.abort()
        #expect(!FileManager.default.fileExists(atPath: aborted.directory))
        let incomplete = try await f.fabric.makeRestoreTarget(.newVM(name: "copy", original: original))
        await expectCode(.restoreIncomplete) { _ = try await incomplete.commit() }
        await incomplete.abort()
        #expect(try await f.fabric.discover().map(\.name) == ["web"])
    }

    @Test func replaceDisksNeedsAStoppedVM() async throws {
        let f = try FabricFolder()
        try f.addSimpleVM("prod/web")
        let key = VMKey(cloudService: "prod", name: "web")
        await expectCode(.vmMustBeStopped) { _ = try await f.fabric.makeRestoreTarget(.replaceDisks(key)) }

        try f.addSimpleVM("prod/web", power: "stopped")
        let target = try await f.fabric.makeRestoreTarget(.replaceDisks(key))
        try Data(repeating: 5, count: 2048).write(to: URL(fileURLWithPath: target.directory + "/os.img"))
        try Data(repeating: 6, count: 2048).write(to: URL(fileURLWithPath: target.directory + "/data1.img"))
        let restored = try await target.commit()
        #expect(restored.key == key)
        #expect(Set(restored.files) == [f.root + "/prod/web/os.img", f.root + "/prod/web/data1.img"])
        #expect(try contents(f.root + "/prod/web/os.img") == Array(repeating: 5, count: 2048))
        let vm = try #require(try await f.fabric.vm(key))
        #expect(vm.disks.map(\.name) == ["os.img", "data1.img"])
        #expect(!FileManager.default.fileExists(atPath: target.directory))
    }
}
