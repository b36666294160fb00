public import CoffreCore
import Foundation
import Testing

/// The contract of `Catalog`, checked against any implementation: `MemoryCatalog`,
/// `SQLiteCatalog`, `PostgresCatalog`. Each check runs on an empty catalog (the caller makes
/// one per check) and records what breaks as issues of the running test (swift-testing's
/// `#expect`), so a test target runs every check on every backend with one parameterised test.
public enum CatalogConformance {
    /// Every check, by name: fabrics and VMs, jobs and their locks, policies, items and points,
    /// the job queue and its leases, API tokens.
    public static let checks: [(name: String, run: @Sendable (any Catalog) async throws -> Void)] = [
        ("fabricsAreRecordedReplacedAndSortedByName", fabricsAreRecordedReplacedAndSortedByName),
        ("discoveryAddsNewVMsPresentAndNotRegistered", discoveryAddsNewVMsPresentAndNotRegistered),
        ("rediscoveryUpdatesTheVMAndKeepsItsRegistration", rediscoveryUpdatesTheVMAndKeepsItsRegistration),
        ("vmMissingFromItsFabricVanishesAndComesBackPresent", vmMissingFromItsFabricVanishesAndComesBackPresent),
        ("vmsAreSortedByNameThenCloudService", vmsAreSortedByNameThenCloudService),
        ("updateVMOfAnUnknownVMThrowsVMNotFound", updateVMOfAnUnknownVMThrowsVMNotFound),
        ("insertJobReturnsTheInProgressHolderOfTheLockAndInsertsNothing", insertJobReturnsTheInProgressHolderOfTheLockAndInsertsNothing),
        ("aNilLockNeverConflicts", aNilLockNeverConflicts),
        ("aFinishedJobReleasesItsLock", aFinishedJobReleasesItsLock),
        ("concurrentInsertsWithOneLockInsertOnce", concurrentInsertsWithOneLockInsertOnce),
        ("updateJobReplacesTheRecordButKeepsARequestedCancel", updateJobReplacesTheRecordButKeepsARequestedCancel),
        ("updateJobOfAnUnknownJobThrowsJobNotFound", updateJobOfAnUnknownJobThrowsJobNotFound),
        ("requestCancelOnlyMarksInProgressJobs", requestCancelOnlyMarksInProgressJobs),
        ("jobsAreFilteredAndNewestFirst", jobsAreFilteredAndNewestFirst),
        ("policyNamesAreUnique", policyNamesAreUnique),
        ("updatePolicyReplacesItOrThrowsPolicyNotFound", updatePolicyReplacesItOrThrowsPolicyNotFound),
        ("policiesAreSortedByName", policiesAreSortedByName),
        ("saveItemInsertsOrReplacesByIDWithOneItemPerVM", saveItemInsertsOrReplacesByIDWithOneItemPerVM),
        ("verificationsAreRecordedWithoutTouchingAnythingElse", verificationsAreRecordedWithoutTouchingAnythingElse),
        ("deleteItemRemovesItAndItsPointsOnly", deleteItemRemovesItAndItsPointsOnly),
        ("commitPointRecordsThePointAndSavesItsItem", commitPointRecordsThePointAndSavesItsItem),
        ("commitPointThatCannotSaveItsItemRecordsNothing", commitPointThatCannotSaveItsItemRecordsNothing),
        ("pointsComeOldestFirstAndRoundTripExactly", pointsComeOldestFirstAndRoundTripExactly),
        ("updatePointsReplacesKnownPointsOnly", updatePointsReplacesKnownPointsOnly),
        ("deletePointsRemovesThoseIDs", deletePointsRemovesThoseIDs),
        ("aQueuedJobHoldsItsLockAndCanBeCancelledBeforeItRuns", aQueuedJobHoldsItsLockAndCanBeCancelledBeforeItRuns),
        ("claimsTakeTheOldestQueuedJobsUpToTheLimitsAndMakeThemTheClaimers", claimsTakeTheOldestQueuedJobsUpToTheLimitsAndMakeThemTheClaimers),
        ("concurrentClaimersNeverTakeOneJobTwiceNorPassAFabricsLimit", concurrentClaimersNeverTakeOneJobTwiceNorPassAFabricsLimit),
        ("aJobThatChangedHandsOrEndedTakesNoMoreWritesFromItsFormerOwner", aJobThatChangedHandsOrEndedTakesNoMoreWritesFromItsFormerOwner),
        ("tokensAreKeptByHashOldestFirst", tokensAreKeptByHashOldestFirst),
        ("ofManyFirstTokensInsertedAtOnceOneIsKept", ofManyFirstTokensInsertedAtOnceOneIsKept),
        ("vaultSamplesAreOnePerDayAndBounded", vaultSamplesAreOnePerDayAndBounded),
        ("jobsStartedBeforeUntilAreSelected", jobsStartedBeforeUntilAreSelected),
    ]

    /// The names of `checks`, as test arguments.
    public static var names: [String] { checks.map(\.name) }

    /// Runs the check named `name` on `catalog`.
    public static func run(_ name: String, on catalog: any Catalog) async throws {
        guard let check = checks.first(where: { $0.name == name }) else {
            Issue.record("no catalog check is named \(name)")
            return
        }
        try await check.run(catalog)
    }

    /// Expects `body` to throw the `CoffreError` with `code`, and returns it.
    @discardableResult
    public static func expectError(
        _ code: CoffreError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void
    ) async -> CoffreError? {
        let error = await #expect(throws: CoffreError.self, sourceLocation: sourceLocation) { try await body() }
        #expect(error?.code == code, sourceLocation: sourceLocation)
        return error
    }
}
