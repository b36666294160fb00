public import CoffreCore
import Foundation

/// The `vm.json` of a local VM folder: what a hypervisor would know about the VM.
///
/// Every field but `disks` may be left out; unknown keys are ignored (see docs/local-fabric.md).
public struct VMDefinition: Codable, Sendable, Equatable {
    /// The VM's name; default: the folder's name.
    public var name: String?
    /// The VM's cloud service; default: the parent folder's name (the fabric's name at the top).
    public var cloudService: String?
    /// Default: the fabric's region.
    public var region: String?
    /// `linux` (default), `windows`, …
    public var osType: String
    /// Unknown words read as `unknown`; default `running`.
    public var powerState: PowerState
    /// The VM agent's version; nil when the guest has no agent (the extension cannot be installed).
    public var agentVersion: String?
    /// Disk image files in the VM folder, the OS disk first.
    public var disks: [String]
    /// Configuration the vault cannot back up, in words.
    public var unsupportedFeatures: [String]

    /// A definition with the defaults a missing key gets.
    public init(
        name: String? = nil, cloudService: String? = nil, region: String? = nil, osType: String = "linux",
        powerState: PowerState = .running, agentVersion: String? = nil, disks: [String] = [],
        unsupportedFeatures: [String] = []
    ) {
        self.name = name
        self.cloudService = cloudService
        self.region = region
        self.osType = osType
        self.powerState = powerState
        self.agentVersion = agentVersion
        self.disks = disks
        self.unsupportedFeatures = unsupportedFeatures
    }

    enum CodingKeys: String, CodingKey {
        case name, cloudService, region, osType, powerState, agentVersion, disks, unsupportedFeatures
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        cloudService = try c.decodeIfPresent(String.self, forKey: .cloudService)
        region = try c.decodeIfPresent(String.self, forKey: .region)
        osType = try c.decodeIfPresent(String.self, forKey: .osType) ?? "linux"
        // A hypervisor's own words ("suspended", "crashed") must not make the VM undiscoverable.
        powerState = try c.decodeIfPresent(String.self, forKey: .powerState).map { PowerState(rawValue: $0) ?? .unknown } ?? .running
        agentVersion = try c.decodeIfPresent(String.self, forKey: .agentVersion)
        disks = try c.decode([String].self, forKey: .disks)
        unsupportedFeatures = try c.decodeIfPresent([String].self, forKey: .unsupportedFeatures) ?? []
    }

    /// Pretty, sorted JSON: the file is meant to be read and edited by people.
    func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self) + Data("\n".utf8)
    }
}

extension VMDefinition {
    /// Reads and checks `<folder>/vm.json`, throwing `InvalidVMDefinition` that names the file.
    static func load(folder: String) throws -> VMDefinition {
        let path = folder + "/" + LocalFabric.definitionFile
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw invalid(path, "it cannot be read (\(error.localizedDescription))")
        }
        let definition: VMDefinition
        do {
            definition = try JSONDecoder().decode(VMDefinition.self, from: data)
        } catch let error as DecodingError {
            throw invalid(path, describe(error))
        }
        try definition.check(path: path)
        return definition
    }

    private func check(path: String) throws {
        guard !disks.isEmpty else { throw Self.invalid(path, "'disks' is empty; a VM needs at least its OS disk") }
        var seen = Set<String>()
        for disk in disks {
            guard Naming.isValid(disk) else {
                throw Self.invalid(path, "disk '\(disk)' is not a valid disk name (1 to 128 characters from A-Z a-z 0-9 . _ -, not starting with a dot)")
            }
            guard seen.insert(disk).inserted else { throw Self.invalid(path, "disk '\(disk)' is listed twice") }
        }
        if let name, name.isEmpty || name.contains("/") { throw Self.invalid(path, "'name' must be non-empty and without '/'") }
        if let cloudService, cloudService.isEmpty { throw Self.invalid(path, "'cloudService' must not be empty") }
    }

    static func invalid(_ path: String, _ detail: String) -> CoffreError {
        CoffreError(.invalidVMDefinition, "\(path) is not a valid VM definition: \(detail)",
                    workaround: "Fix the file (fields in docs/local-fabric.md) or move the VM folder out of the fabric")
    }

    /// One line instead of DecodingError's debug dump.
    private static func describe(_ error: DecodingError) -> String {
        func field(_ path: [any CodingKey]) -> String {
            path.isEmpty ? "the document" : "'" + path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".") + "'"
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(field(context.codingPath + [key])) is missing"
        case .typeMismatch(let type, let context): return "\(field(context.codingPath)) should be \(type == String.self ? "a string" : "\(type)")"
        case .valueNotFound(_, let context): return "\(field(context.codingPath)) is null"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "it is not JSON" : "\(field(context.codingPath)) is not valid"
        @unknown default: return "\(error)"
        }
    }
}
