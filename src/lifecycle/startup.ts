/**
 * How far start-up got, for readiness: the service may answer before it has caught up with the
 * homeserver (the first /sync round in sync mode, the inbox left by a crash in push mode), and
 * until then its reads may miss messages that Matrix already has.
 */
export class StartupProgress {
  private migrated = false;
  private caughtUp = false;

  constructor(private readonly catchingUp: string) {}

  markMigrated(): void {
    this.migrated = true;
  }

  markCaughtUp(): void {
    this.caughtUp = true;
  }

  /** What start-up still waits for, or null once it is done. */
  pending(): string | null {
    if (!this.migrated) return "migrations have not run";
    if (!this.caughtUp) return this.catchingUp;
    return null;
  }
}
