import Foundation

/// A disk image as a VM has one: a GPT with an ext4 partition (files, folders, modes,
/// symbolic links, one escaping by an absolute target and one by `..`) and a vfat partition
/// (long names), and with root a character device node in /dev. Made without root: `mkfs.ext4 -d` fills the ext4, mtools the vfat. For the
/// tests of mounts and file recovery; needs sfdisk, mkfs.ext4, mkfs.vfat and mcopy.
public enum PartitionedImage {
    /// Where the partitions start and how long they are.
    public static let ext4Offset = 1 << 20, ext4Size = 24 << 20
    public static let vfatOffset = 25 << 20, vfatSize = 24 << 20

    /// Writes `image` (64 MiB) with `hosts` as /etc/hosts of its ext4 partition; returns the
    /// folder its ext4 partition was made from (`work/ext4`) and the vfat one (`work/vfat`).
    @discardableResult
    public static func make(_ image: String, work: String, hosts: String = "127.0.0.1 localhost\n", seed: UInt64 = 1) throws -> (ext4: String, vfat: String) {
        let ext4 = work + "/ext4", vfat = work + "/vfat"
        try? FileManager.default.removeItem(atPath: ext4)
        try? FileManager.default.removeItem(atPath: vfat)
        try FileManager.default.createDirectory(atPath: ext4 + "/etc/ssh", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: ext4 + "/home/ana/.cache", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: vfat + "/EFI/BOOT", withIntermediateDirectories: true)
        var state = seed
        let random = Data((0..<(300 << 10)).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        })
        func write(_ path: String, _ data: Data, mode: Int = 0o644) throws {
            try data.write(to: URL(fileURLWithPath: path))
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        }
        try write(ext4 + "/etc/hosts", Data(hosts.utf8), mode: 0o640)
        try write(ext4 + "/etc/ssh/sshd_config", Data("PermitRootLogin no\n".utf8), mode: 0o600)
        try write(ext4 + "/home/ana/photo.bin", random)
        try write(ext4 + "/home/ana/run.sh", Data("#!/bin/sh\necho hi\n".utf8), mode: 0o4755)
        try FileManager.default.createSymbolicLink(atPath: ext4 + "/etc/hosts.link", withDestinationPath: "hosts")
        try FileManager.default.createSymbolicLink(atPath: ext4 + "/etc/escape", withDestinationPath: "/etc/passwd")
        try FileManager.default.createSymbolicLink(atPath: ext4 + "/etc/up", withDestinationPath: "../..")
        try FileManager.default.createSymbolicLink(atPath: ext4 + "/home/ana/docs", withDestinationPath: "../../etc/ssh")
        // A device node (as root): copying the point's files must not recreate it on the host.
        try FileManager.default.createDirectory(atPath: ext4 + "/dev", withIntermediateDirectories: true)
        if getuid() == 0 { _ = mknod(ext4 + "/dev/mem", S_IFCHR | 0o600, dev_t(1 << 8 | 1)) }  // major 1, minor 1
        try Data("fs0:\\EFI\\BOOT\\BOOTX64.EFI\n".utf8).write(to: URL(fileURLWithPath: vfat + "/startup.nsh"))
        try random.prefix(70_000).write(to: URL(fileURLWithPath: vfat + "/EFI/BOOT/BOOTX64.EFI"))
        try Data("long names\n".utf8).write(to: URL(fileURLWithPath: vfat + "/EFI/Read me first.txt"))
        let script = """
            rm -f '\(image)'; truncate -s 64M '\(image)'
            printf 'label: gpt\\nstart=2048,size=49152,type=L\\nstart=51200,size=49152,type=U\\n' | sfdisk -q '\(image)'
            mkfs.ext4 -q -F -E offset=\(ext4Offset) -d '\(ext4)' '\(image)' \(ext4Size / 1024)k
            mkfs.vfat --offset \(vfatOffset / 512) '\(image)' \(vfatSize / 1024) >/dev/null 2>&1
            cd '\(vfat)' && mcopy -s -i '\(image)@@\(vfatOffset)' startup.nsh EFI ::/
            """
        try runScript(script)
        return (ext4, vfat)
    }
}

/// Runs a bash script (set -euo pipefail) and returns its output; throws with the output when
/// it fails. For tests that make disk images with the system's tools.
@discardableResult
public func runScript(_ script: String) throws -> String {
    let (status, output) = try runTool("/bin/bash", ["-euo", "pipefail", "-c", script])
    guard status == 0 else {
        throw NSError(domain: "runScript", code: Int(status),
                      userInfo: [NSLocalizedDescriptionKey: "script failed (\(status)): \(script)\n\(output)"])
    }
    return output
}

/// Runs a program to its end: its exit status and what it wrote to stdout and stderr.
public func runTool(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
}
