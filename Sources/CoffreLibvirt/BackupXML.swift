#if Libvirt
/// The XML documents of libvirt's backup API that Coffre sends (pull mode).
enum BackupXML {
    /// One disk of a pull-mode backup: exported over NBD as `target`, with its fleecing
    /// scratch file (point-in-time copy-on-write of what the guest overwrites meanwhile).
    struct Disk: Equatable {
        var target: String
        var scratch: String
    }

    /// `<domainbackup mode='pull'>`: NBD exports of `disks` on a Unix socket, incremental from
    /// checkpoint `since` when given (then each disk also exports `backup-<target>`, its dirty
    /// bitmap), every other disk of the domain left out.
    static func pull(socket: String, disks: [Disk], excluded: [String], since: String?) -> String {
        var xml = "<domainbackup mode='pull'>\n"
        if let since { xml += "  <incremental>\(escape(since))</incremental>\n" }
        xml += "  <server transport='unix' socket='\(escape(socket))'/>\n  <disks>\n"
        for disk in disks {
            xml += "    <disk name='\(escape(disk.target))' backup='yes' type='file'>"
                + "<scratch file='\(escape(disk.scratch))'/></disk>\n"
        }
        for target in excluded { xml += "    <disk name='\(escape(target))' backup='no'/>\n" }
        return xml + "  </disks>\n</domainbackup>\n"
    }

    /// `<domaincheckpoint>` named `name`, a persistent dirty bitmap on each of `disks`.
    static func checkpoint(name: String, disks: [String], excluded: [String]) -> String {
        var xml = "<domaincheckpoint>\n  <name>\(escape(name))</name>\n  <disks>\n"
        for target in disks { xml += "    <disk name='\(escape(target))' checkpoint='bitmap'/>\n" }
        for target in excluded { xml += "    <disk name='\(escape(target))' checkpoint='no'/>\n" }
        return xml + "  </disks>\n</domaincheckpoint>\n"
    }

    /// Text safe inside an attribute or element.
    static func escape(_ text: String) -> String { text.xmlEscaped }
}
#endif
