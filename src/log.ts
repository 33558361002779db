import pino, { type Logger } from "pino";

export type { Logger };

/** One JSON line per record; tokens and message bodies never pass through here. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "daarion-messaging" },
    serializers: { err: serializeError },
    redact: { paths: ["req.headers.authorization", "*.access_token", "*.as_token", "*.hs_token"], remove: true },
  });
}

/**
 * pino's error serializer, minus the methods it copies from Bun's BuildMessage and
 * ResolveMessage (whose toJSON then spoils the whole field). Their own fields, such as
 * `position` with the file, line and column of a syntax error, stay.
 */
function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const fields = pino.stdSerializers.err(err) as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(fields)) {
    if (typeof value === "function") delete fields[key];
  }
  return fields;
}
