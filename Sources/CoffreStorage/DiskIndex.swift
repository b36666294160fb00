public import CoffreCore

/// A disk's index is a two-level tree of content-addressed index objects:
/// the root lists the ids of the pages, a page lists one 32-byte chunk id per block
/// (all zeros for a zero block). A page covers `pageSpan` bytes of disk whatever the block
/// size, so an unchanged 64 MiB region shares its page with the previous point.
/// See docs/decisions/0003-index-tree.md.
public enum DiskIndex {
    /// Bytes of disk covered by one index page.
    public static let pageSpan = 64 << 20

    public static func pageEntries(blockSize: Int) -> Int { max(16, pageSpan / blockSize) }

    /// Decodes a list of ids (a page or a root).
    public static func ids(_ bytes: [UInt8]) throws -> [ChunkID] {
        guard bytes.count % 32 == 0 else { throw CoffreError(.indexDamaged, "An index object has a partial entry") }
        return bytes.withUnsafeBytes { raw in
            (0..<(bytes.count / 32)).map { ChunkID(bytes: UnsafeRawBufferPointer(rebasing: raw[($0 * 32)...])) }
        }
    }

    public static func encode(_ ids: [ChunkID]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: ids.count * 32)
        bytes.withUnsafeMutableBytes { raw in
            for (i, id) in ids.enumerated() { id.store(into: raw, at: i * 32) }
        }
        return bytes
    }
}
