/** A failed Kubernetes API call, with the HTTP status and the Status reason the apiserver gave. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly method: string,
    readonly path: string,
  ) {
    super(`${method} ${path}: ${status} ${reason}: ${message}`);
  }
}

export const isNotFound = (err: unknown): boolean => err instanceof ApiError && err.status === 404;
export const isConflict = (err: unknown): boolean => err instanceof ApiError && err.status === 409 && err.reason === 'Conflict';
export const isAlreadyExists = (err: unknown): boolean => err instanceof ApiError && err.status === 409 && err.reason === 'AlreadyExists';
export const isGone = (err: unknown): boolean => err instanceof ApiError && err.status === 410;
export const isInvalid = (err: unknown): boolean => err instanceof ApiError && err.status === 422;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
