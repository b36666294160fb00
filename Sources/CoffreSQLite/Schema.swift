import CoffreCore
internal import GRDB

/// The catalog's tables, built by numbered migrations.
///
/// **A migration that has shipped is never edited**: a change is a new migration ("v2"…).
/// Dates are REAL seconds since 2001-01-01 UTC (`datetime(x + 978307200, 'unixepoch')` in
/// the sqlite3 shell); nested lists are JSON text.
enum Schema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1", migrate: createTables)
        migrator.registerMigration("v2-change-tracking") { db in
            // JSON `ChangeTracking` of points taken on fabrics with changed-block tracking.
            try db.alter(table: "recovery_points") { t in t.add(column: "changes", .jsonText) }
        }
        migrator.registerMigration("v3-vm-definition") { db in
            // The fabric's description of the VM at the snapshot (libvirt domain XML), for restores.
            try db.alter(table: "recovery_points") { t in t.add(column: "definition", .text) }
        }
        migrator.registerMigration("v4-verification") { db in
            // JSON `VerificationPolicy` of a policy, `PointVerification` of a point; the item's
            // last verification slot (as `lastScheduledSlot` is for backups).
            try db.alter(table: "policies") { t in t.add(column: "verification", .jsonText) }
            try db.alter(table: "recovery_points") { t in t.add(column: "verification", .jsonText) }
            try db.alter(table: "protected_items") { t in t.add(column: "lastVerificationSlot", .double) }
        }
        migrator.registerMigration("v5-job-queue") { db in
            // A queued job holds its item's lock as an in-progress one does (B6 across the queue).
            try db.drop(index: "jobs_lock")
            try db.create(index: "jobs_lock", on: "jobs", columns: ["lock"], unique: true,
                          condition: [JobStatus.queued.rawValue, JobStatus.inProgress.rawValue].contains(Column("status"))
                              && Column("lock") != nil)
        }
        migrator.registerMigration("v6-api-tokens") { db in
            // API tokens in the catalog (only their SHA-256), not in a file of one node.
            try db.create(table: "api_tokens") { t in
                t.primaryKey("hash", .text)
                t.column("name", .text).notNull()
                t.column("role", .text).notNull()
                t.column("createdAt", .double).notNull()
            }
        }
        migrator.registerMigration("v7-vault-samples") { db in
            // One measure of the vault per UTC day, for the dashboard's storage chart.
            try db.create(table: "vault_samples") { t in
                t.primaryKey("day", .text)
                t.column("takenAt", .double).notNull()
                t.column("storedBytes", .integer).notNull()
                t.column("logicalBytes", .integer).notNull()
            }
        }
        return migrator
    }

    private static func createTables(_ db: Database) throws {
        try db.create(table: "fabrics") { t in
            t.primaryKey("name", .text)
            t.column("kind", .text).notNull()
            t.column("region", .text).notNull()
            t.column("address", .text).notNull()
        }

        try db.create(table: "vms") { t in
            t.column("cloudService", .text).notNull()
            t.column("name", .text).notNull()
            t.primaryKey(["cloudService", "name"])
            t.column("fabric", .text).notNull().indexed()
            t.column("region", .text).notNull()
            t.column("osType", .text).notNull()
            t.column("powerState", .text).notNull()
            t.column("agentVersion", .text)
            t.column("extensionVersion", .text)
            t.column("disks", .jsonText).notNull()
            t.column("unsupportedFeatures", .jsonText).notNull()
            t.column("presence", .text).notNull()
            t.column("firstSeen", .double).notNull()
            t.column("lastSeen", .double).notNull()
            t.column("registration", .text).notNull()
            t.column("registrationErrorCode", .text)
            t.column("registrationErrorMessage", .text)
            t.column("registrationErrorWorkaround", .text)
            t.column("registeredAt", .double)
        }

        try db.create(table: "policies") { t in
            t.primaryKey("name", .text)
            t.column("scheduleFrequency", .text).notNull()
            t.column("scheduleWeekdays", .jsonText).notNull()
            t.column("scheduleTime", .text).notNull()
            t.column("scheduleTimeZone", .text).notNull()
            t.column("retentionDays", .integer).notNull()
            t.column("retentionWeeks", .integer)
            t.column("retentionMonths", .integer)
            t.column("retentionYears", .integer)
        }

        try db.create(table: "protected_items") { t in
            t.primaryKey("id", .text)
            t.column("vmCloudService", .text).notNull()
            t.column("vmName", .text).notNull()
            t.column("policy", .text).notNull()
            t.column("state", .text).notNull()
            t.column("protectedAt", .double).notNull()
            t.column("lastScheduledSlot", .double)
            t.column("softDeletedAt", .double)
            t.column("purgeAfter", .double)
        }
        // One item per VM.
        try db.create(index: "protected_items_vm", on: "protected_items",
                      columns: ["vmCloudService", "vmName"], unique: true)

        try db.create(table: "jobs") { t in
            t.primaryKey("id", .text)
            t.column("type", .text).notNull()
            t.column("status", .text).notNull()
            t.column("vmCloudService", .text)
            t.column("vmName", .text)
            t.column("startedAt", .double).notNull()
            t.column("endedAt", .double)
            t.column("steps", .jsonText).notNull()
            t.column("totalBytes", .integer).notNull()
            t.column("scannedBytes", .integer).notNull()
            t.column("readBytes", .integer).notNull()
            t.column("writtenBytes", .integer).notNull()
            t.column("errorCode", .text)
            t.column("errorMessage", .text)
            t.column("errorWorkaround", .text)
            t.column("cancelRequested", .boolean).notNull()
            t.column("owner", .text).notNull()
            t.column("lock", .text)
            t.column("details", .jsonText).notNull()
        }
        try db.create(index: "jobs_status_startedAt", on: "jobs", columns: ["status", "startedAt"])
        try db.create(index: "jobs_vm", on: "jobs", columns: ["vmCloudService", "vmName", "startedAt"])
        // At most one in-progress job per lock: `insertJob` checks first, this makes it a rule.
        try db.create(index: "jobs_lock", on: "jobs", columns: ["lock"], unique: true,
                      condition: Column("status") == "InProgress" && Column("lock") != nil)

        try db.create(table: "recovery_points") { t in
            t.primaryKey("id", .text)
            t.column("item", .text).notNull().references("protected_items", onDelete: .cascade)
            t.column("vmCloudService", .text).notNull()
            t.column("vmName", .text).notNull()
            t.column("takenAt", .double).notNull()
            t.column("type", .text).notNull()
            t.column("consistency", .text).notNull()
            t.column("tags", .jsonText).notNull()
            t.column("expiresAt", .double)
            t.column("retainUntil", .double)
            t.column("disks", .jsonText).notNull()
            t.column("bytesRead", .integer).notNull()
            t.column("bytesWritten", .integer).notNull()
            t.column("blocksAdded", .integer).notNull()
            t.column("blocksChanged", .integer).notNull()
            t.column("seconds", .double).notNull()
            t.column("guest", .jsonText).notNull()
            t.column("job", .text).notNull()
        }
        try db.create(index: "recovery_points_item_takenAt", on: "recovery_points", columns: ["item", "takenAt"])
    }
}
