import Foundation

/// Parses and formats sizes such as `64KiB`, `1MiB`, `4096`.
public enum ByteSize {
    /// Parses `N`, `NKiB`/`NK`/`NKB`, `NMiB`/`NM`, `NGiB`/`NG` (binary units).
    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Int)] = [
            ("kib", 1 << 10), ("kb", 1 << 10), ("k", 1 << 10),
            ("mib", 1 << 20), ("mb", 1 << 20), ("m", 1 << 20),
            ("gib", 1 << 30), ("gb", 1 << 30), ("g", 1 << 30),
            ("b", 1),
        ]
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            guard let n = Int(trimmed.dropLast(suffix.count)), n >= 0 else { return nil }
            return n * factor
        }
        return Int(trimmed)
    }

    /// `1.5 GiB`, `64 KiB`, `812 B`.
    public static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while abs(value) >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes) B" }
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? "\(Int(rounded)) \(units[unit])" : "\(rounded) \(units[unit])"
    }
}

