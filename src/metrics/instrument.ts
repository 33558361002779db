export type CallObserver = (operation: string, outcome: string, seconds: number) => void;

/**
 * The outcome label of a failed call: the HTTP status class Matrix answered with (4xx, 5xx),
 * or "error" when there was no answer (unreachable, timed out). A bounded set.
 */
export function outcomeOf(err: unknown): string {
  const status = (err as { httpStatus?: unknown } | null)?.httpStatus;
  return typeof status === "number" && status >= 400 && status < 600 ? `${Math.floor(status / 100)}xx` : "error";
}

/**
 * A decorator over a port: every method that returns a promise is timed and its outcome
 * reported under the method's name; properties and other methods pass through untouched.
 */
export function instrumentCalls<T extends object>(target: T, observe: CallObserver): T {
  return new Proxy(target, {
    get(obj, key, receiver) {
      const value = Reflect.get(obj, key, receiver);
      if (typeof value !== "function" || typeof key !== "string") return value;
      return (...args: unknown[]) => {
        const begin = performance.now();
        const result = value.apply(obj, args);
        if (!(result instanceof Promise)) return result;
        const seconds = () => (performance.now() - begin) / 1000;
        return result.then(
          (resolved) => {
            observe(key, "ok", seconds());
            return resolved;
          },
          (err) => {
            observe(key, outcomeOf(err), seconds());
            throw err;
          },
        );
      };
    },
  });
}
