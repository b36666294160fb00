/// What kind of object a stored frame holds; bound into the frame's authentication data so an
/// index page can never be passed off as a data chunk, a manifest or a pack's table.
public enum ObjectKind: UInt8, Sendable, CaseIterable {
    case chunk = 1
    case index = 2
    case manifest = 3
    /// The table at the end of a pack: what it holds and where.
    case packTable = 4
    /// A segment of the vault's chunk index.
    case indexSegment = 5

    /// The folder of this kind in a format-1 vault (one file per object).
    public var formatOneFolder: String {
        switch self {
        case .chunk: "chunks"
        case .index: "indexes"
        case .manifest: "points"
        case .packTable, .indexSegment: ""
        }
    }
}
