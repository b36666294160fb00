import CoffreCore
@testable import CoffreS3
import CoffreTesting
import Foundation

/// Stores on the harness's gateway, for the tests of this target.
enum TestS3 {
    static let credentials = S3Credentials(accessKeyID: S3TestGateway.accessKey, secretAccessKey: S3TestGateway.secretKey)
    /// Fails fast: the tests of errors must not wait a minute for retries.
    static let quickRetry = S3RetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.05, maxTotal: 2)

    static func location(bucket: String = S3TestGateway.bucket, prefix: String = S3TestGateway.newPrefix("t"),
                         endpoint: String = S3TestGateway.endpoint) -> S3Location {
        S3Location(endpoint: endpoint, bucket: bucket, prefix: prefix)
    }

    /// The shared bucket, created once.
    static let sharedBucket: Void? = try? S3ChunkStore.createBucket(location(), credentials: credentials)

    /// A store under a new prefix of the shared bucket.
    static func store(prefix: String = S3TestGateway.newPrefix("t"), deleteBatch: Int = 1000,
                      listPage: Int = 1000) throws -> S3ChunkStore {
        _ = sharedBucket
        return try S3ChunkStore.open(S3ChunkStore(location(prefix: prefix), credentials: credentials,
                                                  retry: S3RetryPolicy(), requestTimeout: 60,
                                                  deleteBatch: deleteBatch, listPage: listPage))
    }

    /// The CoffreError a call throws, or nil.
    static func error(_ body: () throws -> Void) -> CoffreError? {
        do { try body() } catch let error as CoffreError { return error } catch { return nil }
        return nil
    }
}
