public import CoffreCore

/// The errors of mounts and of a point's files.
extension CoffreError {
    public static func notMounted(_ path: String) -> CoffreError {
        CoffreError(.notMounted, "Nothing of Coffre is mounted at \(path)",
                    workaround: "`mount | grep coffre` lists Coffre's mounts")
    }
    static func notCoffreMount(_ path: String, type: String) -> CoffreError {
        CoffreError(.mountPointUnusable, "\(path) holds a \(type) mount that is not Coffre's",
                    workaround: "Choose another folder; Coffre unmounts only what it mounted")
    }
    static func mountBusy(_ paths: [String]) -> CoffreError {
        CoffreError(.mountBusy, "Still in use, so still mounted: \(paths.joined(separator: ", "))",
                    workaround: "Close the files and shells using them (`fuser -vm PATH` names them) and retry, or unmount with --lazy")
    }
    static func toolMissing(_ name: String) -> CoffreError {
        CoffreError(.mountFailed, "\(name) is missing", workaround: "Install util-linux (apt install util-linux mount)")
    }
    public static func pathNotFound(_ path: String, point: String) -> CoffreError {
        CoffreError(.pathNotFound, "Point \(point) has no \(path)",
                    workaround: "List the folder above it: coffre files VM --point \(point) \(parentOf(path))")
    }
    public static func pathOutsidePoint(_ path: String, point: String, reason: String) -> CoffreError {
        CoffreError(.pathOutsidePoint, "\(path) leads outside the file systems of point \(point): \(reason)",
                    workaround: "Give a path inside a file system, as /<disk>/part<N>/…, without '..' and not through absolute symbolic links")
    }
    static func fileSystemNotMounted(_ path: String, note: String) -> CoffreError {
        CoffreError(.fileSystemNotMounted, "\(path) holds no readable file system: \(note)",
                    workaround: "Restore the disk (coffre restore --to DIR) to read it with other tools")
    }

    private static func parentOf(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }
}
