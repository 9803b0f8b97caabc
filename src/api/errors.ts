/**
 * Errors in DCS's shape: `{"error_code", "error_msg", "error_ext_msg"}` with the HTTP status
 * DCS uses for each code. Handlers throw ApiError; the server turns anything else into
 * DCS.5000 without a stack trace.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  body(): { error_code: string; error_msg: string; error_ext_msg: null } {
    return { error_code: this.code, error_msg: this.message, error_ext_msg: null };
  }
}

export const Errors = {
  taskNotFound: () => new ApiError(400, 'DCS.4133', 'Instance job is not found.'),
  jobNotFound: () => new ApiError(400, 'DCS.4133', 'Job is not found.'),
  emptyBody: () => new ApiError(400, 'DCS.4004', 'Empty request body.'),
  invalidJson: () => new ApiError(400, 'DCS.4005', 'Body contains invalid characters or is not JSON.'),
  /** A field that is missing, of the wrong type or out of range. */
  invalidParameter: (field: string, why?: string) =>
    new ApiError(400, 'DCS.4800', `Invalid ${field} in the request.${why ? ` ${why}` : ''}`),
  /** A parameter whose value is not one of the allowed ones (DCS.4063 style). */
  invalidValue: (field: string, why?: string) => new ApiError(400, 'DCS.4063', `Invalid ${field} parameter in the request.${why ? ` ${why}` : ''}`),
  wrongState: (why: string) => new ApiError(400, 'DCS.4957', `Operation not allowed in the task's current state. ${why}`),
  instanceNotFound: (id: string) => new ApiError(404, 'DCS.3022', `This DCS instance does not exist: ${id}.`),
  unknownPath: () => new ApiError(404, 'DCS.4001', 'The requested URL does not exist.'),
  unauthenticated: (why: string) => new ApiError(401, 'APIGW.0301', `Incorrect IAM authentication information: ${why}`),
  wrongProject: () => new ApiError(401, 'DCS.1004', 'Project ID does not match the token.'),
  tooLarge: (limit?: number) => new ApiError(413, 'APIGW.0201', `Request entity too large.${limit ? ` This operation takes at most ${limit} bytes.` : ''}`),
  uriTooLong: () => new ApiError(414, 'APIGW.0201', 'Request URI too long (a path parameter is over 200 characters).'),
  badUrl: () => new ApiError(400, 'APIGW.0201', 'The request URL is not valid (bad percent-encoding).'),
  badRequest: (why: string) => new ApiError(400, 'APIGW.0201', `API request error: ${why}`),
  tooManyRequests: (retryAfter: string) => new ApiError(429, 'APIGW.0308', `The throttling threshold has been reached: too many requests for this access key; retry in ${retryAfter}.`),
  replayed: () => new ApiError(401, 'APIGW.0301', 'Incorrect IAM authentication information: this signed request was already received (replay); sign each request anew.'),
  policyRefused: (field: string, why: string) => new ApiError(400, 'DCS.4800', `Invalid ${field} in the request. ${why}`),
  notSupported: (what: string) => new ApiError(400, 'DCS.4957', `Operation not allowed in the task's current state. ${what}`),
  internal: () => new ApiError(500, 'DCS.5000', 'Internal service error.'),
};
