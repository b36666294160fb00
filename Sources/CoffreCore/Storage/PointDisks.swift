/// One disk of a recovery point as random-access readers see it.
public struct ReadableDisk: Sendable, Equatable, Hashable {
    /// The disk's name in the point (a raw file's base name).
    public var name: String
    public var size: Int64

    public init(name: String, size: Int64) {
        self.name = name
        self.size = size
    }
}

/// Random-access, verified reads of one recovery point's disks: what a mount, a browse of a
/// point's files or an NBD export serves. `Vault.openPoint` (CoffreStorage) makes one.
///
/// A damaged or missing block fails the read; a reader never returns bytes that are not the
/// point's. The point stays in the store, whatever expires around it, until `close()`.
/// Methods block (disks, the network): call them from threads of one's own. Safe from several
/// threads at once.
public protocol PointDisks: AnyObject, Sendable {
    /// The point's id.
    var pointID: String { get }
    /// The point's disks, in its order; `read(disk:)` takes an index into it.
    var readableDisks: [ReadableDisk] { get }
    /// Reads up to `buffer.count` bytes of disk `disk` from `offset`; returns how many were read
    /// (fewer only at the disk's end, 0 past it).
    func read(disk: Int, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Ends the reads and releases the point; later reads fail.
    func close()
}
