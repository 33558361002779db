import pino, { type DestinationStream, type Logger } from "pino";
import pretty from "pino-pretty";
import { currentRequestId } from "./request-context.ts";

export type { Logger };

export interface LogOutput {
  /** Whether stdout is a terminal: people read it, so records are pretty-printed (outside production). */
  isTTY?: boolean;
  production?: boolean;
  /** Where records go; stdout by default. */
  destination?: DestinationStream;
}

/**
 * One JSON line per record, or in dev on a terminal one coloured line per record (pino-pretty,
 * in-process). Tokens and message bodies never pass through here.
 */
export function createLogger(level: string, output: LogOutput = {}): Logger {
  const { isTTY = process.stdout.isTTY === true, production = process.env.NODE_ENV === "production" } = output;
  const options = {
    level,
    base: { service: "daarion-messaging" },
    serializers: { err: serializeError },
    // Every line written while serving a request names it, whoever writes it.
    mixin: () => {
      const requestId = currentRequestId();
      return requestId === undefined ? {} : { request_id: requestId };
    },
    redact: { paths: ["req.headers.authorization", "*.access_token", "*.as_token", "*.hs_token"], remove: true },
  };
  if (isTTY && !production) {
    return pino(options, pretty({ colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname,service", destination: output.destination ?? 1, sync: true }));
  }
  return output.destination ? pino(options, output.destination) : pino(options);
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
