public import Foundation

/// What a Verify job checks of a recovery point.
public enum VerificationCheck: String, Codable, Sendable, CaseIterable, Comparable {
    /// Every block of the point read from the store and checked against its hash.
    case data
    /// The point run as an isolated VM (no network, no shared disks or folders) until its guest
    /// agent answers, or a configured command in the guest succeeds (libvirt fabric).
    case boot

    /// Accepts `data`, `Data`, `boot`.
    public init(parsing text: String) throws {
        guard let check = Self(rawValue: text.lowercased()) else {
            throw CoffreError(.invalidArgument, "'\(text)' is not a verification check",
                              workaround: "Use data, boot, or both (data,boot)")
        }
        self = check
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// A policy's verification (the seed's Verify job): on its own schedule, the newest point of
/// every item of the policy is checked.
public struct VerificationPolicy: Codable, Sendable, Equatable {
    public var schedule: Schedule
    /// Sorted, no duplicates.
    public var checks: [VerificationCheck]
    /// Run in the guest by the boot check (success: exit status 0); nil: the guest agent
    /// answering is success.
    public var bootCommand: String?
    /// How long the boot check waits for the guest.
    public var bootTimeoutSeconds: Int

    public static let defaultBootTimeoutSeconds = 300

    public init(schedule: Schedule, checks: [VerificationCheck], bootCommand: String? = nil,
                bootTimeoutSeconds: Int = Self.defaultBootTimeoutSeconds) {
        self.schedule = schedule
        self.checks = Array(Set(checks)).sorted()
        self.bootCommand = bootCommand
        self.bootTimeoutSeconds = bootTimeoutSeconds
    }

    /// `data,boot daily at 03:00 UTC, boot check `test -f /mnt/ok``.
    public var summary: String {
        checks.map(\.rawValue).joined(separator: ",") + " " + schedule.summary
            + (bootCommand.map { ", boot check `\($0)`" } ?? "")
    }

    public func validate() throws {
        try schedule.validate()
        try Self.validate(checks: checks, bootCommand: bootCommand, bootTimeoutSeconds: bootTimeoutSeconds)
    }

    /// Throws the first problem with a verification's checks, as a scheduled or an on-demand one.
    public static func validate(checks: [VerificationCheck], bootCommand: String?, bootTimeoutSeconds: Int) throws {
        guard !checks.isEmpty else {
            throw CoffreError(.invalidArgument, "A verification needs at least one check",
                              workaround: "Choose data, boot, or both (data,boot)")
        }
        guard (10...86_400).contains(bootTimeoutSeconds) else {
            throw CoffreError(.invalidArgument, "A boot check may wait 10 s to 24 h, not \(bootTimeoutSeconds) s",
                              workaround: "Give a timeout in seconds between 10 and 86400")
        }
        if let command = bootCommand, command.trimmingCharacters(in: .whitespaces).isEmpty {
            throw CoffreError(.invalidArgument, "The boot check's command is empty",
                              workaround: "Give a shell command, or none to wait for the guest agent only")
        }
    }
}

/// The latest verification of a recovery point: when, how, what came of it.
public struct PointVerification: Codable, Sendable, Equatable {
    public var at: Date
    public var checks: [VerificationCheck]
    public var succeeded: Bool
    /// The Verify job.
    public var job: String
    /// What was checked, in words ("2 disks, 640 blocks read and verified; guest agent answered after 4.1 s").
    public var detail: String
    /// Why it failed.
    public var error: ErrorInfo?

    public init(at: Date, checks: [VerificationCheck], succeeded: Bool, job: String, detail: String, error: ErrorInfo? = nil) {
        self.at = at
        self.checks = checks
        self.succeeded = succeeded
        self.job = job
        self.detail = detail
        self.error = error
    }
}

extension CoffreError {
    /// A point's data did not read back as it was stored.
    public static func dataVerificationFailed(_ point: String, vm: VMKey, cause: CoffreError) -> CoffreError {
        CoffreError(.dataVerificationFailed, "Recovery point \(point) of \(vm) failed its data verification: \(cause.message)",
                    workaround: "Back up \(vm) again now, restore from another point if needed, and run `coffre vault verify` to find other damaged points",
                    cause: cause)
    }

    /// A point run as a VM did not come up, or its check command failed.
    public static func bootVerificationFailed(_ point: String, vm: VMKey, detail: String) -> CoffreError {
        CoffreError(.bootVerificationFailed, "Recovery point \(point) of \(vm) failed its boot verification: \(detail)",
                    workaround: "Restore the point as a new VM to look at it (coffre restore --instant), check the guest agent and the check command, and back up again")
    }
}
