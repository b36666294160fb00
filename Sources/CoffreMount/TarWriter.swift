/// POSIX tar (ustar, with pax records for what ustar cannot hold: names and link targets over
/// 100 bytes, sizes over 8 GiB, ids over 2^21), as GNU tar and bsdtar read it.
struct TarWriter {
    enum Kind { case file, directory, symlink }

    struct Header {
        var name: String
        var kind: Kind
        var size: Int64 = 0
        var mode: Int
        var uid: Int
        var gid: Int
        /// Seconds since 1970.
        var modified: Int64
        var linkTarget: String = ""
    }

    /// The header blocks of one entry (a pax header first when needed).
    static func header(_ header: Header) -> [UInt8] {
        var name = header.name
        if header.kind == .directory, !name.hasSuffix("/") { name += "/" }
        var pax: [(String, String)] = []
        if name.utf8.count > 100 { pax.append(("path", name)) }
        if header.linkTarget.utf8.count > 100 { pax.append(("linkpath", header.linkTarget)) }
        if header.size > 0o77777777777 { pax.append(("size", "\(header.size)")) }
        if header.uid > 0o7777777 { pax.append(("uid", "\(header.uid)")) }
        if header.gid > 0o7777777 { pax.append(("gid", "\(header.gid)")) }
        var out: [UInt8] = []
        if !pax.isEmpty {
            let records = pax.flatMap { record($0.0, $0.1) }
            out += block(name: "PaxHeader/" + String(decoding: name.utf8.suffix(80), as: UTF8.self), type: "x",
                         size: Int64(records.count), mode: 0o644, uid: 0, gid: 0, modified: header.modified, link: "")
            out += records + padding(Int64(records.count))
        }
        let type: Character = switch header.kind {
        case .file: "0"
        case .directory: "5"
        case .symlink: "2"
        }
        out += block(name: name, type: type, size: header.kind == .file ? header.size : 0, mode: header.mode,
                     uid: header.uid, gid: header.gid, modified: header.modified, link: header.linkTarget)
        return out
    }

    /// Zeros after `size` bytes of data, up to the next 512-byte block.
    static func padding(_ size: Int64) -> [UInt8] {
        [UInt8](repeating: 0, count: Int((512 - size % 512) % 512))
    }

    /// The end of an archive: two zero blocks.
    static let end = [UInt8](repeating: 0, count: 1024)

    /// `"<length> key=value\n"`, where the length counts the whole record, itself included.
    private static func record(_ key: String, _ value: String) -> [UInt8] {
        let body = " \(key)=\(value)\n"
        var length = body.utf8.count + 1
        while "\(length)".utf8.count + body.utf8.count != length { length += 1 }
        return Array("\(length)\(body)".utf8)
    }

    private static func block(name: String, type: Character, size: Int64, mode: Int, uid: Int, gid: Int,
                              modified: Int64, link: String) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, _ offset: Int, _ width: Int) {
            for (i, byte) in text.utf8.prefix(width).enumerated() { b[offset + i] = byte }
        }
        func octal(_ value: Int64, _ offset: Int, _ width: Int) {
            let digits = String(max(0, min(value, Int64(1) << (3 * (width - 1)) - 1)), radix: 8)
            put(String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits, offset, width - 1)
        }
        put(name, 0, 100)
        octal(Int64(mode & 0o7777), 100, 8)
        octal(Int64(uid), 108, 8)
        octal(Int64(gid), 116, 8)
        octal(size, 124, 12)
        octal(modified, 136, 12)
        put(String(type), 156, 1)
        put(link, 157, 100)
        put("ustar", 257, 6)
        put("00", 263, 2)
        // The checksum is the sum of the header's bytes with its own field read as spaces.
        for i in 148..<156 { b[i] = 0x20 }
        let sum = b.reduce(0) { $0 + Int($1) }
        let digits = String(sum, radix: 8)
        put(String(repeating: "0", count: max(0, 6 - digits.count)) + digits, 148, 6)
        b[154] = 0
        b[155] = 0x20
        return b
    }
}
