/** A refusal the caller can act on: it becomes `{error: code, message}` with `status`. */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "AppError";
  }
}

export const notFound = (what: string) => new AppError(404, "NOT_FOUND", `${what} not found`);
export const forbidden = (message: string) => new AppError(403, "FORBIDDEN", message);
export const channelArchived = () => new AppError(410, "CHANNEL_ARCHIVED", "the channel is archived: it can be read but not changed");
export const conflict = (code: string, message: string) => new AppError(409, code, message);

/** A refusal on the Matrix-facing API: formatted Matrix's way, `{errcode, error}`. */
export class MatrixApiError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: string,
    message: string,
  ) {
    super(message);
    this.name = "MatrixApiError";
  }
}
