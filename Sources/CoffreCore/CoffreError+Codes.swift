// The catalogue of error codes, grouped by where they are raised. Messages and workarounds
// are built by the factories next to the code that raises them.

extension CoffreError.Code {
    // MARK: Inventory, protection, jobs (the control plane)
    public static let alreadyProtected = Self("AlreadyProtected")
    public static let alreadyRegistered = Self("AlreadyRegistered")
    public static let ambiguousVMName = Self("AmbiguousVMName")
    public static let anotherOperationInProgress = Self("AnotherOperationInProgress")
    public static let backupCopyTimeout = Self("BackupCopyTimeout")
    public static let backupInternalError = Self("BackupInternalError")
    public static let confirmationRequired = Self("ConfirmationRequired")
    public static let discoveryInProgress = Self("DiscoveryInProgress")
    public static let discoveryInternalError = Self("DiscoveryInternalError")
    public static let diskSizeUnaligned = Self("DiskSizeUnaligned")
    public static let extensionInstallFailed = Self("ExtensionInstallFailed")
    public static let extensionInstallTimeout = Self("ExtensionInstallTimeout")
    public static let fabricNotFound = Self("FabricNotFound")
    public static let guestAgentError = Self("GuestAgentError")
    public static let guestUnreachable = Self("GuestUnreachable")
    public static let invalidDate = Self("InvalidDate")
    public static let invalidDiskFormat = Self("InvalidDiskFormat")
    public static let invalidFilter = Self("InvalidFilter")
    public static let invalidRetainUntil = Self("InvalidRetainUntil")
    public static let invalidRetention = Self("InvalidRetention")
    public static let invalidSchedule = Self("InvalidSchedule")
    public static let itemNotSoftDeleted = Self("ItemNotSoftDeleted")
    public static let itemSoftDeleted = Self("ItemSoftDeleted")
    public static let jobInterrupted = Self("JobInterrupted")
    public static let jobNotFound = Self("JobNotFound")
    public static let jobNotRunning = Self("JobNotRunning")
    public static let noRecoveryPoint = Self("NoRecoveryPoint")
    public static let notProtected = Self("NotProtected")
    public static let policyAlreadyExists = Self("PolicyAlreadyExists")
    public static let policyNotFound = Self("PolicyNotFound")
    public static let protectionNotStopped = Self("ProtectionNotStopped")
    public static let protectionStopped = Self("ProtectionStopped")
    public static let snapshotTimeout = Self("SnapshotTimeout")
    public static let tooManyDataDisks = Self("TooManyDataDisks")
    public static let unsupportedConfiguration = Self("UnsupportedConfiguration")
    public static let vmAgentNotFound = Self("VMAgentNotFound")
    public static let vmAgentOutdated = Self("VMAgentOutdated")
    public static let vmMustBeStopped = Self("VMMustBeStopped")
    public static let vmNotFound = Self("VMNotFound")
    public static let vmNotInVaultRegion = Self("VMNotInVaultRegion")
    public static let vmNotRegistered = Self("VMNotRegistered")
    public static let vmNotRunning = Self("VMNotRunning")
    public static let vmVanished = Self("VMVanished")

    // MARK: The vault (data plane)
    public static let cancelled = Self("Cancelled")
    public static let chunkDamaged = Self("ChunkDamaged")
    public static let chunkMissing = Self("ChunkMissing")
    public static let diskNotFound = Self("DiskNotFound")
    public static let duplicateDiskName = Self("DuplicateDiskName")
    public static let encryptionKeyMissing = Self("EncryptionKeyMissing")
    public static let ioError = Self("IOError")
    public static let indexDamaged = Self("IndexDamaged")
    public static let invalidBlockSize = Self("InvalidBlockSize")
    public static let invalidName = Self("InvalidName")
    public static let noDisks = Self("NoDisks")
    public static let pointNotFound = Self("PointNotFound")
    public static let restoreTargetExists = Self("RestoreTargetExists")
    public static let vaultAlreadyExists = Self("VaultAlreadyExists")
    public static let vaultBusy = Self("VaultBusy")
    public static let vaultFormatUnsupported = Self("VaultFormatUnsupported")
    public static let vaultNotFound = Self("VaultNotFound")
    public static let vaultUpgradeRequired = Self("VaultUpgradeRequired")
    public static let wrongEncryptionKey = Self("WrongEncryptionKey")

    // MARK: The vault on S3
    public static let s3AccessDenied = Self("S3AccessDenied")
    public static let s3BucketNotFound = Self("S3BucketNotFound")
    public static let s3ClockSkew = Self("S3ClockSkew")
    public static let s3ConditionalCreateUnsupported = Self("S3ConditionalCreateUnsupported")
    public static let s3RequestFailed = Self("S3RequestFailed")
    public static let s3Unreachable = Self("S3Unreachable")
    public static let s3WrongRegion = Self("S3WrongRegion")

    // MARK: Mounts and files of a point
    public static let fuseUnavailable = Self("FUSEUnavailable")
    public static let mountFailed = Self("MountFailed")
    public static let mountPointUnusable = Self("MountPointUnusable")
    public static let mountBusy = Self("MountBusy")
    public static let notMounted = Self("NotMounted")
    public static let fileSystemNotMounted = Self("FileSystemNotMounted")
    public static let pathNotFound = Self("PathNotFound")
    public static let pathOutsidePoint = Self("PathOutsidePoint")
    public static let fileReadFailed = Self("FileReadFailed")

    // MARK: The catalog
    public static let catalogBusy = Self("CatalogBusy")
    public static let catalogFailed = Self("CatalogFailed")
    public static let catalogUnreadable = Self("CatalogUnreadable")
    public static let catalogUnreachable = Self("CatalogUnreachable")
    public static let catalogNotEmpty = Self("CatalogNotEmpty")
    public static let catalogCopyNotFound = Self("CatalogCopyNotFound")
    public static let jobLeaseLost = Self("JobLeaseLost")

    // MARK: The engine
    public static let guestPrepareFailed = Self("GuestPrepareFailed")
    public static let guestReleaseFailed = Self("GuestReleaseFailed")
    public static let internalError = Self("InternalError")

    // MARK: The local fabric
    public static let fabricUnreachable = Self("FabricUnreachable")
    public static let guestAgentTimeout = Self("GuestAgentTimeout")
    public static let guestAgentUnavailable = Self("GuestAgentUnavailable")
    public static let invalidArgument = Self("InvalidArgument")
    public static let invalidVMDefinition = Self("InvalidVMDefinition")
    public static let restoreIncomplete = Self("RestoreIncomplete")
    public static let vmAlreadyExists = Self("VMAlreadyExists")

    // MARK: The in-guest extension (seed 001)
    public static let agentBusy = Self("AgentBusy")
    public static let agentStateDamaged = Self("AgentStateDamaged")
    public static let freezeFailed = Self("FreezeFailed")
    public static let guestAlreadyFrozen = Self("GuestAlreadyFrozen")
    public static let guestAlreadyPrepared = Self("GuestAlreadyPrepared")
    public static let incorrectJSONConfigFile = Self("IncorrectJSONConfigFile")
    public static let incorrectPluginhostFile = Self("IncorrectPluginhostFile")
    public static let insufficientPermissionForPreScript = Self("InsufficientPermissionforPre-Script")
    public static let insufficientPermissionForPostScript = Self("InsufficientPermissionforPost-Script")
    public static let notPrepared = Self("NotPrepared")
    public static let postScriptExecutionFailed = Self("PostScriptExecutionFailed")
    public static let postScriptNotFound = Self("PostScriptNotFound")
    public static let postScriptTimeout = Self("PostScriptTimeout")
    public static let preScriptExecutionFailed = Self("PreScriptExecutionFailed")
    public static let preScriptNotFound = Self("PreScriptNotFound")
    public static let preScriptTimeout = Self("PreScriptTimeout")
    public static let thawFailed = Self("ThawFailed")
    public static let thawedByWatchdog = Self("ThawedByWatchdog")
    public static let watchdogFailed = Self("WatchdogFailed")

    // MARK: NBD
    public static let nbdConnectFailed = Self("NBDConnectFailed")
    public static let nbdConnectionLost = Self("NBDConnectionLost")
    public static let nbdExportNotFound = Self("NBDExportNotFound")
    public static let nbdInvalidRequest = Self("NBDInvalidRequest")
    public static let nbdMetaContextUnavailable = Self("NBDMetaContextUnavailable")
    public static let nbdNegotiationFailed = Self("NBDNegotiationFailed")
    public static let nbdProtocolError = Self("NBDProtocolError")
    public static let nbdServerError = Self("NBDServerError")
    public static let nbdTimeout = Self("NBDTimeout")

    // MARK: libvirt/QEMU
    public static let extensionPackageMissing = Self("ExtensionPackageMissing")
    public static let libvirtError = Self("LibvirtError")
    public static let originalDefinitionMissing = Self("OriginalDefinitionMissing")
    public static let qemuImgFailed = Self("QemuImgFailed")
    public static let libvirtMissing = Self("LibvirtMissing")
    public static let qemuImgMissing = Self("QemuImgMissing")
    public static let qemuNBDFailed = Self("QemuNBDFailed")
    public static let qemuNBDMissing = Self("QemuNBDMissing")
    public static let restoreNotSupported = Self("RestoreNotSupported")
    public static let scratchFolderUnusable = Self("ScratchFolderUnusable")
    public static let unsupportedDisk = Self("UnsupportedDisk")
    public static let instantRestoreFailed = Self("InstantRestoreFailed")

    // MARK: Verification
    public static let dataVerificationFailed = Self("DataVerificationFailed")
    public static let bootVerificationFailed = Self("BootVerificationFailed")

    // MARK: The HTTP API and dashboard
    public static let badRequest = Self("BadRequest")
    public static let crossSiteRequest = Self("CrossSiteRequest")
    public static let forbidden = Self("Forbidden")
    public static let invalidConfiguration = Self("InvalidConfiguration")
    public static let invalidForm = Self("InvalidForm")
    public static let invalidRequest = Self("InvalidRequest")
    public static let invalidRestoreTarget = Self("InvalidRestoreTarget")
    public static let methodNotAllowed = Self("MethodNotAllowed")
    public static let recoveryPointNotFound = Self("RecoveryPointNotFound")
    public static let routeNotFound = Self("RouteNotFound")
    public static let unauthenticated = Self("Unauthenticated")

    // MARK: The command line
    public static let invalidOption = Self("InvalidOption")
    public static let invalidPercent = Self("InvalidPercent")
    public static let invalidServer = Self("InvalidServer")
    public static let libvirtNotBuilt = Self("LibvirtNotBuilt")
    public static let serverRequired = Self("ServerRequired")
    public static let serverUnreachable = Self("ServerUnreachable")
    public static let tlsFingerprintMismatch = Self("TLSFingerprintMismatch")
    public static let tokenMissing = Self("TokenMissing")
    public static let unexpectedResponse = Self("UnexpectedResponse")
}

extension CoffreError.Code {
    /// Every code Coffre raises. The server's status table must cover each of them (a test
    /// checks it), and a test checks that every code declared above is listed here.
    public static let catalogue: [Self] = [
        .alreadyProtected, .alreadyRegistered, .ambiguousVMName, .anotherOperationInProgress, .backupCopyTimeout,
        .backupInternalError, .confirmationRequired, .discoveryInProgress, .discoveryInternalError,
        .diskSizeUnaligned, .extensionInstallFailed, .extensionInstallTimeout, .fabricNotFound, .guestAgentError,
        .guestUnreachable, .invalidDate, .invalidDiskFormat, .invalidFilter, .invalidRetainUntil, .invalidRetention,
        .invalidSchedule, .itemNotSoftDeleted, .itemSoftDeleted, .jobInterrupted, .jobNotFound, .jobNotRunning,
        .noRecoveryPoint, .notProtected, .policyAlreadyExists, .policyNotFound, .protectionNotStopped,
        .protectionStopped, .snapshotTimeout, .tooManyDataDisks, .unsupportedConfiguration, .vmAgentNotFound,
        .vmAgentOutdated, .vmMustBeStopped, .vmNotFound, .vmNotInVaultRegion, .vmNotRegistered, .vmNotRunning,
        .vmVanished, .cancelled, .chunkDamaged, .chunkMissing, .diskNotFound, .duplicateDiskName,
        .encryptionKeyMissing, .ioError, .indexDamaged, .invalidBlockSize, .invalidName, .noDisks, .pointNotFound,
        .restoreTargetExists, .vaultAlreadyExists, .vaultBusy, .vaultFormatUnsupported, .vaultNotFound, .vaultUpgradeRequired,
        .wrongEncryptionKey, .s3AccessDenied, .s3BucketNotFound, .s3ClockSkew, .s3ConditionalCreateUnsupported,
        .s3RequestFailed, .s3Unreachable, .s3WrongRegion, .fuseUnavailable, .mountFailed, .mountPointUnusable, .mountBusy,
        .notMounted, .fileSystemNotMounted, .pathNotFound, .pathOutsidePoint, .fileReadFailed, .catalogBusy, .catalogFailed, .catalogUnreadable,
        .catalogUnreachable, .catalogNotEmpty, .catalogCopyNotFound, .jobLeaseLost, .guestPrepareFailed,
        .guestReleaseFailed, .internalError, .fabricUnreachable, .guestAgentTimeout, .guestAgentUnavailable,
        .invalidArgument, .invalidVMDefinition, .restoreIncomplete, .vmAlreadyExists, .agentBusy, .agentStateDamaged,
        .freezeFailed, .guestAlreadyFrozen, .guestAlreadyPrepared, .incorrectJSONConfigFile,
        .incorrectPluginhostFile, .insufficientPermissionForPreScript, .insufficientPermissionForPostScript,
        .notPrepared, .postScriptExecutionFailed, .postScriptNotFound, .postScriptTimeout, .preScriptExecutionFailed,
        .preScriptNotFound, .preScriptTimeout, .thawFailed, .thawedByWatchdog, .watchdogFailed, .nbdConnectFailed,
        .nbdConnectionLost, .nbdExportNotFound, .nbdInvalidRequest, .nbdMetaContextUnavailable,
        .nbdNegotiationFailed, .nbdProtocolError, .nbdServerError, .nbdTimeout, .extensionPackageMissing,
        .libvirtError, .libvirtMissing, .originalDefinitionMissing, .qemuImgFailed, .qemuImgMissing, .qemuNBDFailed, .qemuNBDMissing,
        .restoreNotSupported, .scratchFolderUnusable, .unsupportedDisk, .instantRestoreFailed, .dataVerificationFailed,
        .bootVerificationFailed, .badRequest, .crossSiteRequest, .forbidden,
        .invalidConfiguration, .invalidForm, .invalidRequest, .invalidRestoreTarget, .methodNotAllowed,
        .recoveryPointNotFound, .routeNotFound, .unauthenticated, .invalidOption, .invalidPercent, .invalidServer,
        .libvirtNotBuilt, .serverRequired, .serverUnreachable, .tlsFingerprintMismatch, .tokenMissing, .unexpectedResponse
    ]
}
