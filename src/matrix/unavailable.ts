import { AppError } from "../errors.ts";
import { MatrixError } from "./port.ts";

/**
 * Runs a homeserver call; its failure becomes the caller's 502 MATRIX_UNAVAILABLE, saying what
 * the homeserver did not do and keeping Matrix's errcode. An AppError passes as it is.
 */
export async function orMatrixUnavailable<T>(fn: () => Promise<T>, didNot: string): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof AppError) throw err;
    const errcode = err instanceof MatrixError ? err.errcode : "M_UNKNOWN";
    throw new AppError(502, "MATRIX_UNAVAILABLE", `the Matrix homeserver ${didNot} (${errcode})`);
  }
}
