public import CoffreCore
import Foundation
public import Hummingbird

/// An error as the API answers it: an HTTP status and the body `{code, message, workaround}`.
public struct APIError: HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var body: Body
    /// The `Allow` header of a 405.
    var allow: String?

    /// The JSON body of every error response.
    public struct Body: Codable, Sendable, Equatable {
        public var code: CoffreError.Code
        public var message: String
        public var workaround: String?
    }

    public init(status: HTTPResponse.Status, code: CoffreError.Code, message: String, workaround: String? = nil) {
        self.status = status
        self.body = Body(code: code, message: message, workaround: workaround)
    }

    /// The response for a `CoffreError`: its status comes from `statusByCode`.
    public init(_ error: CoffreError) {
        self.init(status: Self.status(of: error.code), code: error.code, message: error.message, workaround: error.workaround)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        if let allow { headers[.allow] = allow }
        let data = try APIJSON.encoder.encode(body)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func unauthenticated() -> APIError {
        APIError(status: .unauthorized, code: .unauthenticated, message: "This request needs a token",
                 workaround: "Send 'Authorization: Bearer TOKEN'; the first admin token is in the data folder's admin-token file")
    }

    static func unknownToken() -> APIError {
        APIError(status: .unauthorized, code: .unauthenticated, message: "This server does not know the token sent",
                 workaround: "Check the token (an admin lists them with `coffre token list`); the first admin token is in the data folder's admin-token file")
    }

    static func forbidden(needs: Role, has: Role) -> APIError {
        APIError(status: .forbidden, code: .forbidden, message: "This operation needs the \(needs.rawValue) role; the token has \(has.rawValue)",
                 workaround: "Use a token with the \(needs.rawValue) role")
    }

    static func badRequest(_ code: CoffreError.Code, _ message: String, workaround: String? = nil) -> APIError {
        APIError(status: .badRequest, code: code, message: message, workaround: workaround)
    }

    // MARK: Mapping by code

    /// The HTTP status of every code of the catalogue, by what the code says of the request.
    /// Every code is listed exactly once: `APIErrorStatusTests` fails on one that is missing.
    static let statusGroups: [(HTTPResponse.Status, [CoffreError.Code])] = [
        // 400: the request itself is wrong; sent again unchanged it fails again.
        (.badRequest, [
            .badRequest, .invalidRequest, .invalidForm, .invalidFilter, .invalidArgument, .invalidName, .invalidDate,
            .invalidSchedule, .invalidRetention, .invalidRetainUntil, .invalidRestoreTarget, .invalidDiskFormat,
            .invalidBlockSize, .invalidPercent, .invalidOption, .invalidServer, .serverRequired, .confirmationRequired,
            .diskSizeUnaligned, .duplicateDiskName, .noDisks, .diskNotFound, .tooManyDataDisks, .vmNotInVaultRegion,
            .unsupportedConfiguration, .unsupportedDisk, .restoreNotSupported, .pathOutsidePoint,
        ]),
        // 401/403: who is asking.
        (.unauthorized, [.unauthenticated, .tokenMissing]),
        (.forbidden, [.forbidden, .crossSiteRequest]),
        // 404: the thing named does not exist.
        (.notFound, [
            .vmNotFound, .policyNotFound, .jobNotFound, .recoveryPointNotFound, .pointNotFound, .fabricNotFound,
            .notProtected, .noRecoveryPoint, .routeNotFound, .pathNotFound, .catalogCopyNotFound,
        ]),
        (.methodNotAllowed, [.methodNotAllowed]),
        // 409: the request is valid but the current state forbids it.
        (.conflict, [
            .anotherOperationInProgress, .discoveryInProgress, .alreadyProtected, .alreadyRegistered,
            .policyAlreadyExists, .jobNotRunning, .protectionStopped, .itemSoftDeleted, .itemNotSoftDeleted,
            .protectionNotStopped, .vmNotRegistered, .vmVanished, .restoreTargetExists, .ambiguousVMName,
            .vmAlreadyExists, .vmMustBeStopped, .vmNotRunning, .vmAgentNotFound, .vmAgentOutdated, .vaultBusy, .vaultUpgradeRequired,
            .vaultAlreadyExists, .originalDefinitionMissing, .invalidVMDefinition, .agentBusy, .guestAlreadyFrozen,
            .guestAlreadyPrepared, .notPrepared, .mountPointUnusable, .mountBusy, .notMounted, .fileSystemNotMounted,
            .catalogNotEmpty, .jobLeaseLost,
        ]),
        // 500: this server failed (its storage, its catalog, its host tools).
        (.internalServerError, [
            .internalError, .ioError, .chunkDamaged, .chunkMissing, .indexDamaged, .wrongEncryptionKey,
            .encryptionKeyMissing, .vaultNotFound, .vaultFormatUnsupported, .catalogFailed, .catalogUnreadable,
            .backupInternalError, .discoveryInternalError, .restoreIncomplete, .jobInterrupted, .invalidConfiguration,
            .libvirtNotBuilt, .libvirtMissing, .extensionPackageMissing, .scratchFolderUnusable, .qemuImgMissing, .qemuImgFailed,
            .qemuNBDMissing, .qemuNBDFailed, .fuseUnavailable, .mountFailed, .fileReadFailed, .dataVerificationFailed,
        ]),
        // 502: what the server relies on (a fabric, a guest, its extension, an NBD server) failed.
        (.badGateway, [
            .fabricUnreachable, .libvirtError, .guestUnreachable, .guestAgentUnavailable, .guestAgentError,
            .extensionInstallFailed, .guestPrepareFailed, .guestReleaseFailed, .agentStateDamaged, .freezeFailed,
            .thawFailed, .thawedByWatchdog, .watchdogFailed, .incorrectJSONConfigFile, .incorrectPluginhostFile,
            .s3AccessDenied, .s3BucketNotFound, .s3ClockSkew, .s3ConditionalCreateUnsupported, .s3RequestFailed,
            .s3Unreachable, .s3WrongRegion,
            .insufficientPermissionForPreScript, .insufficientPermissionForPostScript, .preScriptExecutionFailed,
            .postScriptExecutionFailed, .preScriptNotFound, .postScriptNotFound, .preScriptTimeout, .postScriptTimeout,
            .nbdConnectFailed, .nbdConnectionLost, .nbdExportNotFound, .nbdInvalidRequest, .nbdMetaContextUnavailable,
            .nbdNegotiationFailed, .nbdProtocolError, .nbdServerError, .serverUnreachable, .tlsFingerprintMismatch, .unexpectedResponse,
            .instantRestoreFailed, .bootVerificationFailed,
        ]),
        // 503: try again later.
        (.serviceUnavailable, [.catalogBusy, .catalogUnreachable, .cancelled]),
        // 504: something the server waited for took too long.
        (.gatewayTimeout, [
            .guestAgentTimeout, .extensionInstallTimeout, .snapshotTimeout, .backupCopyTimeout, .nbdTimeout,
        ]),
    ]

    static let statusByCode: [CoffreError.Code: HTTPResponse.Status] = {
        var table: [CoffreError.Code: HTTPResponse.Status] = [:]
        for (status, codes) in statusGroups {
            for code in codes { table[code] = status }
        }
        return table
    }()

    /// The status of a code. Every code of the catalogue has one; a code this version does not
    /// know (a newer guest's report) is this server failing to handle it: 500.
    static func status(of code: CoffreError.Code) -> HTTPResponse.Status {
        statusByCode[code] ?? .internalServerError
    }
}
