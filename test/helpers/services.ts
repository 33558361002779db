import postgres from "postgres";

/**
 * The real services a suite may use. Under REQUIRE_SERVICES=1 (CI) a missing service fails
 * the suite instead of skipping it.
 */
export const requireServices = process.env.REQUIRE_SERVICES === "1";
export const databaseUrl = process.env.DATABASE_URL || null;
export const natsUrl = process.env.NATS_URL || null;

export function serviceMissing(name: "DATABASE_URL" | "NATS_URL"): boolean {
  const present = name === "DATABASE_URL" ? databaseUrl : natsUrl;
  if (present) return false;
  if (requireServices) throw new Error(`REQUIRE_SERVICES=1 but ${name} is not set`);
  return true;
}

/**
 * A fresh, empty PostgreSQL database for one suite (or bench run), on the server DATABASE_URL
 * points at unless `server` names another. Returns its URL and a function that drops it.
 */
export async function freshPostgresDatabase(
  prefix = "daarion_test",
  server: string | null = databaseUrl,
): Promise<{ url: string; drop: () => Promise<void> }> {
  if (!server) throw new Error("DATABASE_URL is not set");
  const name = `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = postgres(server, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(server);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const a = postgres(server, { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}
