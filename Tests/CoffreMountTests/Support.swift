import CoffreCore
import CoffreTesting
import Foundation
import Synchronization
import Testing

/// The image tools' scripts (sfdisk, mkfs, mcopy).
@discardableResult
func shell(_ script: String) throws -> String {
    try runScript(script)
}

func temporaryFolder(_ name: String = #function) throws -> String {
    let path = NSTemporaryDirectory() + "coffre-mount-tests-\(name.filter(\.isLetter))-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Whether the image tools exist; under COFFRE_CI a missing one fails the tests instead.
enum ImageTools {
    static func has(_ tools: String...) -> Bool {
        ProcessInfo.processInfo.environment["COFFRE_CI"] != nil
            || tools.allSatisfy { tool in ["/usr/sbin/", "/usr/bin/", "/sbin/"].contains { FileManager.default.isExecutableFile(atPath: $0 + tool) } }
    }
    /// FUSE mounts and loop devices: root and /dev/fuse.
    static var canMount: Bool {
        ProcessInfo.processInfo.environment["COFFRE_CI"] != nil || (getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/fuse"))
    }
}

/// Reads of a file as `PointDisks` (one disk), counting closes; can be made to fail.
final class FileDisks: PointDisks, @unchecked Sendable {
    let pointID = "rp-test"
    let readableDisks: [ReadableDisk]
    let handles: [FileHandle]
    let closes = Mutex(0)
    let failing = Mutex(false)

    init(_ paths: [String]) throws {
        readableDisks = try paths.map { path in
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
            return ReadableDisk(name: (path as NSString).lastPathComponent, size: Int64(size))
        }
        handles = try paths.map { try FileHandle(forReadingFrom: URL(fileURLWithPath: $0)) }
    }

    func read(disk: Int, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if failing.withLock({ $0 }) { throw CoffreError(.chunkDamaged, "block at \(offset) damaged (test)") }
        let n = pread(handles[disk].fileDescriptor, buffer.baseAddress, buffer.count, off_t(offset))
        guard n >= 0 else { throw CoffreError(.ioError, "pread failed") }
        return n
    }

    func close() { closes.withLock { $0 += 1 } }
}
