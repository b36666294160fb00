public import CoffreCore

/// The NBD client's error catalogue.
extension CoffreError {
    static let nbdServerHint =
        "Check that the NBD server (the libvirt backup job or qemu-nbd) is running and that the socket path or host:port is right"

    public static func nbdConnectFailed(_ endpoint: NBDEndpoint, reason: String) -> CoffreError {
        CoffreError(.nbdConnectFailed, "Cannot connect to the NBD server at \(endpoint): \(reason)",
                    workaround: nbdServerHint)
    }
    public static func nbdConnectionLost(_ endpoint: NBDEndpoint, during operation: String, reason: String) -> CoffreError {
        CoffreError(.nbdConnectionLost, "The connection to the NBD server at \(endpoint) was lost during \(operation): \(reason)",
                    workaround: "Check that the backup job is still running (`virsh domjobinfo`), then retry the backup")
    }
    public static func nbdTimeout(_ endpoint: NBDEndpoint, during operation: String, seconds: Int) -> CoffreError {
        CoffreError(.nbdTimeout, "The NBD server at \(endpoint) did not answer within \(seconds) s during \(operation)",
                    workaround: "Check the server's load and its connection limit (qemu-nbd allows one client unless started with --shared=N)")
    }
    public static func nbdProtocolError(_ endpoint: NBDEndpoint, _ detail: String) -> CoffreError {
        CoffreError(.nbdProtocolError, "The NBD server at \(endpoint) broke the protocol: \(detail)",
                    workaround: "Use a fixed-newstyle NBD server such as QEMU's or qemu-nbd; report the server's name and version if it is one")
    }
    public static func nbdExportNotFound(_ export: String, at endpoint: NBDEndpoint, serverMessage: String) -> CoffreError {
        CoffreError(.nbdExportNotFound,
                    "The NBD server at \(endpoint) has no export named '\(export)'" + (serverMessage.isEmpty ? "" : " (\(serverMessage))"),
                    workaround: "List the exports with `nbdinfo --list` or `qemu-nbd -L`; libvirt names a backup export after the disk's target (e.g. vda) unless <disk exportname=…> says otherwise")
    }
    public static func nbdNegotiationFailed(_ export: String, at endpoint: NBDEndpoint, option: String, reply: String, serverMessage: String) -> CoffreError {
        CoffreError(.nbdNegotiationFailed,
                    "The NBD server at \(endpoint) refused \(option) for export '\(export)' with \(reply)" + (serverMessage.isEmpty ? "" : ": \(serverMessage)"),
                    workaround: reply == "NBD_REP_ERR_TLS_REQD"
                        ? "The server requires TLS, which Coffre's NBD client does not speak: export over a Unix socket instead"
                        : "Check the server's export configuration and its log")
    }
    public static func nbdMetaContextUnavailable(_ context: String, export: String, at endpoint: NBDEndpoint, reason: String) -> CoffreError {
        CoffreError(.nbdMetaContextUnavailable,
                    "The NBD server at \(endpoint) does not offer the meta context '\(context)' for export '\(export)': \(reason)",
                    workaround: context.hasPrefix("qemu:dirty-bitmap:")
                        ? "Check that the bitmap exists on the disk (`virsh checkpoint-list`) and that the backup was started as incremental (<incremental> in the backup XML), or take a full backup"
                        : "Use a server that supports NBD_CMD_BLOCK_STATUS (QEMU 3.0 or later), or read the whole disk")
    }
    public static func nbdServerError(_ export: String, at endpoint: NBDEndpoint, operation: String, error: String, message: String) -> CoffreError {
        CoffreError(.nbdServerError,
                    "The NBD server at \(endpoint) failed \(operation) on export '\(export)': \(error)" + (message.isEmpty ? "" : " (\(message))"),
                    workaround: "Check the server's log and the health of the disk it exports")
    }
    public static func nbdInvalidRequest(_ export: String, _ detail: String) -> CoffreError {
        CoffreError(.nbdInvalidRequest, "Invalid request on NBD export '\(export)': \(detail)")
    }
}
