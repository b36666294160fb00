/// One run of bytes with the same block-status flags in one meta context.
public struct NBDExtent: Sendable, Hashable, CustomStringConvertible {
    /// The bytes it covers.
    public var range: Range<Int64>
    /// The context's flags: for `base:allocation` bit 0 is `NBD_STATE_HOLE` and bit 1
    /// `NBD_STATE_ZERO`; for `qemu:dirty-bitmap:…` bit 0 is dirty.
    public var flags: UInt32

    public init(range: Range<Int64>, flags: UInt32) {
        self.range = range
        self.flags = flags
    }

    /// `base:allocation`: not allocated on the server (may still read as non-zero unless `isZero`).
    public var isHole: Bool { flags & NBDExtent.stateHole != 0 }
    /// `base:allocation`: reads as zeros.
    public var isZero: Bool { flags & NBDExtent.stateZero != 0 }
    /// `qemu:dirty-bitmap:…`: written since the bitmap was enabled.
    public var isDirty: Bool { flags & NBDExtent.stateDirty != 0 }

    /// `NBD_STATE_HOLE` (`base:allocation`).
    public static let stateHole: UInt32 = 1 << 0
    /// `NBD_STATE_ZERO` (`base:allocation`).
    public static let stateZero: UInt32 = 1 << 1
    /// The dirty bit of `qemu:dirty-bitmap:…`.
    public static let stateDirty: UInt32 = 1 << 0

    public var description: String { "\(range.lowerBound)..<\(range.upperBound) flags=\(flags)" }
}

/// The names of the meta contexts Coffre uses.
public enum NBDMetaContext {
    /// Allocation status: holes and known-zero ranges.
    public static let allocation = "base:allocation"

    /// The context QEMU offers for a dirty bitmap (`qemu:dirty-bitmap:NAME`); libvirt's
    /// incremental pull-mode backup names it `backup-<disk target>`, e.g. `backup-vda`.
    public static func dirtyBitmap(_ name: String) -> String { "qemu:dirty-bitmap:\(name)" }
}

extension [NBDExtent] {
    /// Adjacent extents with the same flags joined into one.
    public func coalesced() -> [NBDExtent] {
        var result: [NBDExtent] = []
        result.reserveCapacity(count)
        for extent in self where !extent.range.isEmpty {
            if let last = result.last, last.flags == extent.flags, last.range.upperBound == extent.range.lowerBound {
                result[result.count - 1].range = last.range.lowerBound..<extent.range.upperBound
            } else {
                result.append(extent)
            }
        }
        return result
    }

    /// The ranges of the extents that satisfy `predicate`, adjacent ranges merged.
    public func ranges(where predicate: (NBDExtent) -> Bool) -> [Range<Int64>] {
        var result: [Range<Int64>] = []
        for extent in self where predicate(extent) && !extent.range.isEmpty {
            if let last = result.last, last.upperBound == extent.range.lowerBound {
                result[result.count - 1] = last.lowerBound..<extent.range.upperBound
            } else {
                result.append(extent.range)
            }
        }
        return result
    }
}
