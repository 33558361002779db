import pino, { type Logger } from "pino";

export type { Logger };

/** One JSON line per record; tokens and message bodies never pass through here. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "daarion-messaging" },
    redact: { paths: ["req.headers.authorization", "*.access_token", "*.as_token", "*.hs_token"], remove: true },
  });
}
