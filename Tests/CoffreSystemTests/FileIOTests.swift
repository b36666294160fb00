import CoffreCore
import CoffreSystem
import Foundation
import Testing

/// The durable-write helpers every module shares.
struct FileIOTests {
    let folder: String

    init() throws {
        folder = NSTemporaryDirectory() + "coffre-fileio-\(UUID().uuidString)"
        try FileIO.makeDirectories(folder + "/a/b")
    }

    @Test func atomicWriteReplacesWholeFilesWithTheModeAsked() throws {
        let path = folder + "/state.json"
        try FileIO.writeFileAtomically(path, Array("first".utf8), mode: 0o600)
        try FileIO.writeFileAtomically(path, Array("second".utf8), mode: 0o640)
        #expect(try FileIO.readFile(path) == Array("second".utf8))
        #expect(FileIO.status(path)?.permissions == 0o640)
        // No temporary file is left beside it.
        #expect(try FileIO.list(folder).sorted() == ["a", "state.json"])
    }

    @Test func readFileReadsToTheEndWhateverTheStatedSize() throws {
        // /proc files say their size is 0.
        let stat = try #require(try FileIO.readFile("/proc/self/stat"))
        #expect(stat.count > 20)
        #expect(try FileIO.readFile(folder + "/missing") == nil)
        #expect(throws: CoffreError.self) { _ = try FileIO.readExistingFile(folder + "/missing") }
        let big = (0..<200_000).map { UInt8($0 % 251) }
        try FileIO.writeFileAtomically(folder + "/big", big)
        #expect(try FileIO.readFile(folder + "/big") == big)
    }

    @Test func errorsNameTheOperationThePathAndKeepTheErrno() {
        do {
            _ = try FileIO.open(folder + "/nope/file", .readOnly)
            Issue.record("opened")
        } catch {
            #expect(error.code == .ioError)
            #expect(error.message.contains("open \(folder)/nope/file failed"))
            #expect((error.cause as? SystemCallError)?.errno == Errno.noSuchFile)
        }
    }

    @Test func createIfAbsentTellsAnExistingFileApart() throws {
        let path = folder + "/new/file"
        let fd = try #require(try FileIO.createIfAbsent(path, makingParent: true))
        FileIO.close(fd)
        #expect(try FileIO.createIfAbsent(path) == nil)
    }

    @Test func removeTreeRemovesEverythingAndToleratesAbsence() throws {
        try FileIO.writeFileAtomically(folder + "/a/b/c", [1, 2, 3])
        try FileIO.removeTree(folder + "/a")
        #expect(!FileIO.hasEntry(folder + "/a"))
        try FileIO.removeTree(folder + "/a")
    }

    @Test func replaceKeepsTheReplacedFilesMode() throws {
        let final = folder + "/disk.img"
        try FileIO.writeFileAtomically(final, [0], mode: 0o640)
        try FileIO.writeFileAtomically(final + ".new", [1, 1], mode: 0o600)
        try FileIO.replace(final, with: final + ".new")
        #expect(try FileIO.readFile(final) == [1, 1])
        #expect(FileIO.status(final)?.permissions == 0o640)
        #expect(!FileIO.hasEntry(final + ".new"))
    }

    @Test func aLockHeldThroughOneDescriptorRefusesAnother() throws {
        let path = folder + "/lock"
        let first = try FileIO.open(path, [.readWrite, .create])
        let second = try FileIO.open(path, .readOnly)
        defer { FileIO.close(second) }
        #expect(try FileIO.tryLock(first, .exclusive, path: path))
        #expect(try !FileIO.tryLock(second, .shared, path: path))
        FileIO.close(first)  // closing releases it
        #expect(try FileIO.tryLock(second, .shared, path: path))
    }

    @Test func dataExtentsSkipHoles() throws {
        let path = folder + "/sparse"
        let fd = try FileIO.open(path, [.readWrite, .create])
        defer { FileIO.close(fd) }
        try FileIO.truncate(fd, to: 8 << 20, path: path)
        try [UInt8](repeating: 7, count: 4096).withUnsafeBytes { try FileIO.pwrite(fd, $0, at: 4 << 20, path: path) }
        let extents = FileIO.dataExtents(fd, in: 0..<(8 << 20))
        // ext4 and tmpfs report the one written block; a file system without SEEK_DATA says all of it.
        #expect(extents == [(4 << 20)..<((4 << 20) + 4096)] || extents == [0..<(8 << 20)])
        var buffer = [UInt8](repeating: 1, count: 16)
        try buffer.withUnsafeMutableBytes { try FileIO.pread(fd, $0, at: (8 << 20) - 8, path: path) }
        #expect(buffer == [UInt8](repeating: 0, count: 16), "bytes past the end read as zeros")
    }

    @Test func pathHelpers() {
        #expect(FileIO.directoryName("/a/b/c") == "/a/b")
        #expect(FileIO.directoryName("/a") == "/")
        #expect(FileIO.directoryName("a") == ".")
        #expect(FileIO.baseName("/a/b/") == "b")
        #expect(FileIO.absolutePath("/x/y/") == "/x/y")
        #expect(FileIO.absolutePath("rel").hasSuffix("/rel"))
    }
}
