/**
 * A request body that sends `chunks` and then stays open, never ending, until `close()`. An
 * answer to a request carrying it proves the server answered without waiting for (or
 * buffering) the whole body; a server that reads to the end never answers.
 */
export function openBody(chunks: Array<string | Uint8Array>): { body: ReadableStream<Uint8Array>; sentBytes: () => number; close: () => void } {
  let sent = 0;
  let controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  const queue = chunks.map((c) => (typeof c === "string" ? new TextEncoder().encode(c) : c));
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    pull(c) {
      const next = queue.shift();
      if (!next) return new Promise<void>(() => {}); // stays open
      sent += next.byteLength;
      c.enqueue(next);
    },
  });
  return {
    body,
    sentBytes: () => sent,
    close: () => {
      try {
        controller?.error(new Error("test over"));
      } catch {
        // already closed
      }
    },
  };
}

/** Resolves with the answer, or rejects once `ms` pass without one. */
export async function answerWithin(request: Promise<Response>, ms: number): Promise<Response> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms: the server waited for the body`)), ms);
  });
  try {
    return await Promise.race([request, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
