// A small ext4 image loop-mounted inside a test's guest root: the only file system the
// freezer tests ever freeze.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

enum LoopDevices {
    /// Why loop mounts cannot be made here; nil when they can.
    static let unavailableReason: String? = {
        guard getuid() == 0 else { return "not running as root" }
        guard FileManager.default.fileExists(atPath: "/dev/loop-control") else { return "no /dev/loop-control" }
        for tool in ["losetup", "mkfs.ext4", "mount", "umount", "fsfreeze"] where Shell.which(tool) == nil {
            return "\(tool) is not installed (Debian packages mount, e2fsprogs, util-linux)"
        }
        let probe = Shell.run(["losetup", "--find"])
        guard probe.status == 0 else { return "losetup --find failed: \(probe.output)" }
        return nil
    }()

    /// Whether the freezer tests run: where loop devices work, and always under COFFRE_CI=1
    /// (where a missing loop device must fail the run rather than skip it; `loopDevicesOnCI`
    /// says why).
    static var shouldRun: Bool {
        unavailableReason == nil || ProcessInfo.processInfo.environment["COFFRE_CI"] == "1"
    }
}

/// An ext4 image mounted at `<root>/mnt/data` (and optionally more).
final class LoopMount {
    let image: String
    let mountPoint: String

    /// Creates a 16 MiB ext4 image beside the root and mounts it under the root.
    init(root: GuestRoot, guestPath: String = "/mnt/data", sizeMiB: Int = 16) throws {
        if let reason = LoopDevices.unavailableReason { throw HarnessError("loop devices are unavailable: \(reason)") }
        image = root.path + "-\(guestPath.replacingOccurrences(of: "/", with: "_")).img"
        mountPoint = guestPath == "/" ? root.path : root.host(guestPath)
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: image, contents: nil), truncate(image, off_t(sizeMiB) << 20) == 0 else {
            throw HarnessError("cannot create \(image)")
        }
        let mkfs = Shell.run(["mkfs.ext4", "-q", "-F", image])
        guard mkfs.status == 0 else { throw HarnessError("mkfs.ext4: \(mkfs.output)") }
        let mount = Shell.run(["mount", "-o", "loop", image, mountPoint])
        guard mount.status == 0 else {
            unlink(image)
            throw HarnessError("mount -o loop: \(mount.output)")
        }
    }

    /// The loop device behind the mount, from /proc/self/mountinfo.
    var device: String? {
        let text = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 4, fields[4] == mountPoint, let dash = fields.firstIndex(of: "-"), dash + 2 < fields.count {
                return String(fields[dash + 2])
            }
        }
        return nil
    }

    /// Thaws, in case a test failed while frozen.
    func thaw() { _ = Shell.run(["fsfreeze", "-u", mountPoint]) }

    /// Thaws (in case), unmounts (which frees the loop device: `-o loop` sets autoclear) and
    /// deletes the image. Safe to call twice.
    func remove() {
        let device = self.device
        _ = Shell.run(["fsfreeze", "-u", mountPoint])
        if Shell.run(["umount", mountPoint]).status != 0 { _ = Shell.run(["umount", "-l", mountPoint]) }
        if let device, device.hasPrefix("/dev/loop") { _ = Shell.run(["losetup", "-d", device]) }
        unlink(image)
    }
}

/// A process that writes into the frozen file system: it blocks until the thaw.
final class Writer {
    let process = Process()

    init(file: String, text: String = "written") throws {
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "printf '%s' \"$1\" > \"$2\"", "writer", text, file]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    var finished: Bool { !process.isRunning }

    /// Waits for it; true when it finished in time.
    func wait(upTo seconds: Double) -> Bool { Processes.wait(upTo: seconds) { finished } }

    /// Kills it if still running (after a thaw it finishes on its own).
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

enum Shell {
    struct Result { var status: Int32; var output: String }

    static func run(_ arguments: [String]) -> Result {
        let process = Process()
        // Absolute paths: CI's PATH may lack the sbin folders.
        if let tool = which(arguments[0]) {
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = Array(arguments.dropFirst())
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = arguments
        }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return Result(status: -1, output: "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    static func which(_ tool: String) -> String? {
        for folder in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] where FileManager.default.isExecutableFile(atPath: "\(folder)/\(tool)") {
            return "\(folder)/\(tool)"
        }
        return nil
    }
}
