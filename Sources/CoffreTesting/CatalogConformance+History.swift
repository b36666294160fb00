import CoffreCore
import Foundation
import Testing

/// The history the dashboard's charts read: one vault sample per day, bounded; jobs by day.
extension CatalogConformance {
    static func vaultSamplesAreOnePerDayAndBounded(_ catalog: any Catalog) async throws {
        #expect(try await catalog.vaultSamples().isEmpty)
        let day = 86_400.0
        func sample(_ days: Double, stored: Int64) -> VaultSample {
            let date = CatalogSample.at(days * day + 3600)
            return VaultSample(day: VaultSample.day(of: date), takenAt: date, storedBytes: stored, logicalBytes: stored * 3)
        }
        for days in 0..<5 { try await catalog.recordVaultSample(sample(Double(days), stored: Int64(days + 1) << 20), keepingDays: 400) }
        // A later sample of the same day replaces the earlier one.
        let later = VaultSample(day: sample(4, stored: 0).day, takenAt: CatalogSample.at(4 * day + 7200), storedBytes: 99,
                                logicalBytes: 123_456_789_012)
        try await catalog.recordVaultSample(later, keepingDays: 400)
        var samples = try await catalog.vaultSamples()
        #expect(samples.count == 5)
        #expect(samples.last == later)
        #expect(samples.first == sample(0, stored: 1 << 20), "dates and sizes round-trip exactly")
        #expect(samples.map(\.day) == samples.map(\.day).sorted())
        // Keeping 2 days before the newest: days 0 and 1 go.
        try await catalog.recordVaultSample(sample(5, stored: 6 << 20), keepingDays: 3)
        samples = try await catalog.vaultSamples()
        #expect(samples.map(\.day) == (2...5).map { sample(Double($0), stored: 0).day })
    }

    static func jobsStartedBeforeUntilAreSelected(_ catalog: any Catalog) async throws {
        for (index, seconds) in [10.0, 20, 30].enumerated() {
            let job = CatalogSample.job("job-\(index)", startedAt: CatalogSample.at(seconds), status: .succeeded)
            _ = try await catalog.insertJob(job, lock: nil)
        }
        let window = try await catalog.jobs(JobFilter(since: CatalogSample.at(20), until: CatalogSample.at(30)))
        #expect(window.map(\.id) == ["job-1"])
        #expect(try await catalog.jobs(JobFilter(until: CatalogSample.at(20.5))).map(\.id) == ["job-1", "job-0"])
    }
}
