import CoffreCore
import Foundation
internal import GRDB

/// A row of `vms`: what discovery saw, flattened, plus the vault's registration state.
struct VMRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "vms"
    enum Columns {
        static let cloudService = Column(CodingKeys.cloudService)
        static let name = Column(CodingKeys.name)
        static let fabric = Column(CodingKeys.fabric)
        static let presence = Column(CodingKeys.presence)
    }

    var cloudService: String
    var name: String
    var fabric: String
    var region: String
    var osType: String
    var powerState: String
    var agentVersion: String?
    var extensionVersion: String?
    /// JSON `[VirtualDisk]`.
    var disks: String
    /// JSON `[String]`.
    var unsupportedFeatures: String
    var presence: String
    var firstSeen: Double
    var lastSeen: Double
    var registration: String
    var registrationErrorCode: String?
    var registrationErrorMessage: String?
    var registrationErrorWorkaround: String?
    var registeredAt: Double?

    init(_ record: VMRecord) throws {
        cloudService = record.vm.cloudService
        name = record.vm.name
        fabric = record.fabric
        region = record.vm.region
        osType = record.vm.osType
        powerState = record.vm.powerState.rawValue
        agentVersion = record.vm.agentVersion
        extensionVersion = record.vm.extensionVersion
        disks = try JSONColumn.encode(record.vm.disks)
        unsupportedFeatures = try JSONColumn.encode(record.vm.unsupportedFeatures)
        presence = record.presence.rawValue
        firstSeen = record.firstSeen.stored
        lastSeen = record.lastSeen.stored
        registration = record.registration.rawValue
        registrationErrorCode = record.registrationError?.code.rawValue
        registrationErrorMessage = record.registrationError?.message
        registrationErrorWorkaround = record.registrationError?.workaround
        registeredAt = record.registeredAt?.stored
    }

    func record() throws -> VMRecord {
        let vm = DiscoveredVM(
            name: name, cloudService: cloudService, region: region, osType: osType,
            powerState: try decodeRaw(powerState, column: "vms.powerState"),
            agentVersion: agentVersion, extensionVersion: extensionVersion,
            disks: try JSONColumn.decode(disks, column: "vms.disks"),
            unsupportedFeatures: try JSONColumn.decode(unsupportedFeatures, column: "vms.unsupportedFeatures"))
        return VMRecord(
            vm: vm, fabric: fabric,
            presence: try decodeRaw(presence, column: "vms.presence"),
            firstSeen: Date(stored: firstSeen), lastSeen: Date(stored: lastSeen),
            registration: try decodeRaw(registration, column: "vms.registration"),
            registrationError: ErrorInfo(
                storedCode: registrationErrorCode, message: registrationErrorMessage,
                workaround: registrationErrorWorkaround),
            registeredAt: registeredAt.map(Date.init(stored:)))
    }

    /// The primary key of the VM `key`.
    static func key(_ key: VMKey) -> [String: String] {
        [CodingKeys.cloudService.stringValue: key.cloudService, CodingKeys.name.stringValue: key.name]
    }
}
