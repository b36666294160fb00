/// What kind of object a stored frame holds; bound into the frame's authentication data so an
/// index page can never be passed off as a data chunk or a manifest.
public enum ObjectKind: UInt8, Sendable, CaseIterable {
    case chunk = 1
    case index = 2
    case manifest = 3

    /// The vault folder of this kind.
    public var folder: String {
        switch self {
        case .chunk: "chunks"
        case .index: "indexes"
        case .manifest: "points"
        }
    }
}

