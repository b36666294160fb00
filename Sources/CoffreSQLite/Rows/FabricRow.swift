import CoffreCore
internal import GRDB

/// A row of `fabrics`.
struct FabricRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "fabrics"
    enum Columns {
        static let name = Column(CodingKeys.name)
    }

    var name: String
    var kind: String
    var region: String
    var address: String

    init(_ record: FabricRecord) {
        name = record.name
        kind = record.kind
        region = record.region
        address = record.address
    }

    var record: FabricRecord {
        FabricRecord(name: name, kind: kind, region: region, address: address)
    }
}
