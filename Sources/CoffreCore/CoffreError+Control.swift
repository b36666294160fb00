/// The control plane's error catalogue. The first group is seed 000's troubleshooting table
/// (discovery, registration, backup), in English, with the seed's recommended action; the
/// rest are Coffre's own.
extension CoffreError {
    // MARK: Seed 000 — discovery

    /// A fabric could not be reached (D3).
    public static func discoveryInternalError(fabric: String, detail: String) -> CoffreError {
        CoffreError(.discoveryInternalError,
                    "Failed to discover new items: Coffre ran into an internal error reaching fabric '\(fabric)' (\(detail)). Wait a few minutes and retry the operation",
                    workaround: "Retry the discovery after 15 minutes")
    }
    /// D2.
    public static func discoveryInProgress() -> CoffreError {
        CoffreError(.discoveryInProgress,
                    "Failed to discover new items: another discovery operation is already in progress. Wait until the current discovery operation has completed")
    }

    // MARK: Seed 000 — registration (R4)

    public static func vmNotRunning(_ vm: VMKey) -> CoffreError {
        CoffreError(.vmNotRunning,
                    "The VM \(vm) is not in a state to install the extension: check that the VM is running. The Coffre extension requires the VM to be running",
                    workaround: "Start the VM and, once it is running, retry the registration")
    }
    public static func tooManyDataDisks(_ vm: VMKey, count: Int, limit: Int) -> CoffreError {
        CoffreError(.tooManyDataDisks,
                    "The number of data disks attached to the VM \(vm) (\(count)) exceeds the allowed limit: detach data disks from this VM and retry the operation. This vault backs up at most \(limit) data disks per VM (setting maxDataDisks)")
    }
    public static func unsupportedConfiguration(_ vm: VMKey, features: [String]) -> CoffreError {
        CoffreError(.unsupportedConfiguration,
                    "Coffre cannot register the VM \(vm): its configuration is not supported (\(features.joined(separator: "; ")))",
                    workaround: "This error comes from an unsupported configuration: shared or pass-through disks, disks on remote storage the fabric cannot snapshot, several network interfaces bonded for load balancing. Remove it from the VM, or back up its disk images with `coffre image backup`")
    }
    public static func vmAgentNotFound(_ vm: VMKey, minimum: String) -> CoffreError {
        CoffreError(.vmAgentNotFound,
                    "The VM guest agent was not found in the VM \(vm)",
                    workaround: "Install the VM agent (qemu-guest-agent, version \(minimum) or later) in the VM, check it runs, then retry the registration")
    }
    public static func vmAgentOutdated(_ vm: VMKey, version: String, minimum: String) -> CoffreError {
        CoffreError(.vmAgentOutdated,
                    "The VM guest agent in the VM \(vm) is version \(version), older than the minimum \(minimum)",
                    workaround: "Upgrade the VM agent in the VM to version \(minimum) or later, then retry the registration")
    }
    public static func extensionInstallTimeout(_ vm: VMKey, seconds: Double) -> CoffreError {
        CoffreError(.extensionInstallTimeout,
                    "Registration of the VM \(vm) failed: the Install Agent operation timed out after \(formatSeconds(seconds))",
                    workaround: "Check that the VM's operating system version is supported")
    }
    /// B6, and the registration row of the same text.
    public static func anotherOperationInProgress(_ vm: VMKey, job: String) -> CoffreError {
        CoffreError(.anotherOperationInProgress,
                    "Failed to execute the command: another operation is in progress on this item (\(vm), job \(job)). Wait until the previous operation completes, then retry",
                    workaround: "A backup, restore or other job for the VM is running and no new job can start until it ends. Wait for it, or cancel it with `coffre job cancel \(job)`")
    }

    // MARK: Seed 000 — backup

    public static func backupCopyTimeout(_ vm: VMKey, seconds: Double) -> CoffreError {
        CoffreError(.backupCopyTimeout,
                    "Copying the disks of \(vm) from the snapshot to the vault timed out after \(formatSeconds(seconds)). Retry the operation in a few minutes",
                    workaround: "This happens when there is too much data to copy. Back up fewer or smaller disks per VM, or raise the vault's copy timeout (setting copyTimeout)")
    }
    public static func snapshotTimeout(_ vm: VMKey, seconds: Double) -> CoffreError {
        CoffreError(.snapshotTimeout,
                    "The snapshot subtask of the VM \(vm) timed out after \(formatSeconds(seconds)). Retry the operation in a few minutes",
                    workaround: "This happens when the VM agent has a problem or the fabric cannot be reached: check the agent in the VM and the network between the vault and the fabric")
    }
    public static func backupInternalError(_ vm: VMKey, detail: String) -> CoffreError {
        CoffreError(.backupInternalError,
                    "The backup of \(vm) failed with an internal error (\(detail)). Retry the operation in a few minutes",
                    workaround: "Two causes are common: there is too much data to copy (back up fewer disks); or the original VM was deleted — to keep its backup data but stop the errors, stop protection with `coffre stop-protection VM --retain-data`")
    }
    public static func extensionInstallFailed(_ vm: VMKey) -> CoffreError {
        CoffreError(.extensionInstallFailed,
                    "Installing the Coffre extension on \(vm) failed: the VM agent is required by the extension. Install the VM agent first, then retry the registration",
                    workaround: "Check that the VM agent is installed correctly and running in the VM, and that the VM's configuration says so")
    }
    /// K5: the VM is gone from its fabric.
    public static func vmNotFoundInFabric(_ vm: VMKey, fabric: String) -> CoffreError {
        CoffreError(.vmNotFound,
                    "The VM \(vm) no longer exists in fabric '\(fabric)'; the backup cannot be performed",
                    workaround: "Restore the VM under the same name and cloud service to re-attach its points, or stop protection with `coffre stop-protection \(vm) --retain-data` to keep its data and stop these errors")
    }

    // MARK: Coffre's own

    public static func vmNotFound(_ text: String) -> CoffreError {
        CoffreError(.vmNotFound, "No VM named '\(text)' in this vault",
                    workaround: "Run `coffre discover`, then name the VM as `coffre vm list` shows it (name or cloudService/name)")
    }
    public static func ambiguousVMName(_ name: String, candidates: [VMKey]) -> CoffreError {
        CoffreError(.ambiguousVMName,
                    "Several VMs are named '\(name)': \(candidates.map(\.description).joined(separator: ", "))",
                    workaround: "Name the VM with its cloud service: cloudService/name")
    }
    public static func vmNotInVaultRegion(_ vm: VMKey, region: String, vaultRegion: String) -> CoffreError {
        CoffreError(.vmNotInVaultRegion,
                    "The VM \(vm) is in region '\(region)', not in the vault's region '\(vaultRegion)'",
                    workaround: "Register the VM with a vault of its region")
    }
    public static func vmVanished(_ vm: VMKey) -> CoffreError {
        CoffreError(.vmVanished, "The VM \(vm) was not found by the last discovery",
                    workaround: "Run `coffre discover` again once the VM is back")
    }
    public static func alreadyRegistered(_ vm: VMKey) -> CoffreError {
        CoffreError(.alreadyRegistered, "The VM \(vm) is already registered with this vault",
                    workaround: "Protect it with `coffre protect \(vm) --policy NAME`")
    }
    public static func vmNotRegistered(_ vm: VMKey) -> CoffreError {
        CoffreError(.vmNotRegistered, "The VM \(vm) is not registered with this vault",
                    workaround: "Register it first with `coffre register \(vm)`")
    }
    public static func alreadyProtected(_ vm: VMKey, policy: String) -> CoffreError {
        CoffreError(.alreadyProtected, "The VM \(vm) is already protected by policy '\(policy)'; a VM has one policy at a time",
                    workaround: "Change its policy with `coffre protect \(vm) --policy NAME --change`, or edit the policy")
    }
    public static func notProtected(_ vm: VMKey) -> CoffreError {
        CoffreError(.notProtected, "The VM \(vm) is not protected",
                    workaround: "Protect it with `coffre protect \(vm) --policy NAME`")
    }
    public static func protectionStopped(_ vm: VMKey) -> CoffreError {
        CoffreError(.protectionStopped, "Protection of the VM \(vm) is stopped; no backups are taken",
                    workaround: "Resume it with `coffre resume \(vm)`")
    }
    public static func itemSoftDeleted(_ vm: VMKey, purgeAfter: String) -> CoffreError {
        CoffreError(.itemSoftDeleted,
                    "The backup data of \(vm) is soft-deleted (purged after \(purgeAfter)); its points cannot be used",
                    workaround: "Undelete it with `coffre undelete \(vm)` first")
    }
    public static func itemNotSoftDeleted(_ vm: VMKey) -> CoffreError {
        CoffreError(.itemNotSoftDeleted, "The backup data of \(vm) is not soft-deleted; there is nothing to undelete")
    }
    public static func protectionNotStopped(_ vm: VMKey) -> CoffreError {
        CoffreError(.protectionNotStopped, "Protection of the VM \(vm) is not stopped; there is nothing to resume")
    }
    public static func policyNotFound(_ name: String) -> CoffreError {
        CoffreError(.policyNotFound, "No policy named '\(name)'",
                    workaround: "List policies with `coffre policy list` or create one with `coffre policy create`")
    }
    public static func policyAlreadyExists(_ name: String) -> CoffreError {
        CoffreError(.policyAlreadyExists, "A policy named '\(name)' already exists",
                    workaround: "Choose another name, or change it with `coffre policy set \(name)`")
    }
    public static func invalidSchedule(_ detail: String) -> CoffreError {
        CoffreError(.invalidSchedule, "Invalid schedule: \(detail)",
                    workaround: "Use --daily HH:MM or --weekly DAY[,DAY…] HH:MM with --time-zone NAME (e.g. Europe/Paris)")
    }
    public static func invalidRetention(_ detail: String) -> CoffreError {
        CoffreError(.invalidRetention, "Invalid retention: \(detail)",
                    workaround: "Give --keep-days N (1–9999) and optionally --keep-weeks, --keep-months, --keep-years")
    }
    public static func invalidRetainUntil(_ date: String) -> CoffreError {
        CoffreError(.invalidRetainUntil, "The retention date \(date) is not in the future",
                    workaround: "Give a date after today, e.g. --retain-until 2027-01-31")
    }
    public static func jobNotFound(_ id: String) -> CoffreError {
        CoffreError(.jobNotFound, "No job \(id)", workaround: "List jobs with `coffre jobs`")
    }
    public static func jobNotRunning(_ id: String, status: String) -> CoffreError {
        CoffreError(.jobNotRunning, "Job \(id) is not running (it is \(status)); only running jobs can be cancelled")
    }
    public static func jobInterrupted(_ id: String) -> CoffreError {
        CoffreError(.jobInterrupted, "Job \(id) was interrupted: the process running it stopped before it ended",
                    workaround: "Nothing of it is visible; run the operation again (scheduled backups run again at their next slot)")
    }
    public static func recoveryPointNotFound(_ id: String, vm: VMKey) -> CoffreError {
        CoffreError(.pointNotFound, "No recovery point \(id) of \(vm)",
                    workaround: "List the VM's points with `coffre points \(vm)`")
    }
    public static func noRecoveryPoint(_ vm: VMKey) -> CoffreError {
        CoffreError(.noRecoveryPoint, "The VM \(vm) has no recovery point",
                    workaround: "Take one with `coffre backup \(vm)`")
    }
    public static func confirmationRequired(_ what: String) -> CoffreError {
        CoffreError(.confirmationRequired, "\(what) overwrites data and needs an explicit confirmation",
                    workaround: "Add --yes to confirm")
    }
    public static func fabricNotFound(_ name: String) -> CoffreError {
        CoffreError(.fabricNotFound, "No fabric named '\(name)' is configured",
                    workaround: "Check the vault's configuration")
    }
}

/// `0.2 s`, `120 s`.
public func formatSeconds(_ seconds: Double) -> String {
    seconds >= 10 || seconds == seconds.rounded() ? "\(Int(seconds.rounded())) s" : "\((seconds * 10).rounded() / 10) s"
}

extension Duration {
    /// The duration in seconds, fractions included.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

extension CoffreError {
    /// Replacing disks of a running VM would corrupt what the guest is writing.
    public static func vmMustBeStopped(_ vm: VMKey) -> CoffreError {
        CoffreError(.vmMustBeStopped, "The disks of \(vm) can only be replaced while it is stopped",
                    workaround: "Stop the VM (powerState \"stopped\" in its vm.json for the local fabric; `virsh shutdown` for libvirt), then retry the restore")
    }
}
