/**
 * The one registry of ORCID-format API errors. Codes and wording follow ORCID's own where ORCID has
 * one (../shared/ORCID.md); codes we add are marked.
 */
export const MORE_INFO = 'https://members.orcid.org/api/resources/troubleshooting';

export interface ErrorCodeSpec {
  status: number;
  userMessage: string;
  developerPrefix: string;
}

export const ERROR_CODES = {
  /** Generic invalid data (ORCID's 9001); we use it for a malformed ORCID iD, which ORCID never checks. */
  9001: { status: 400, userMessage: 'ORCID could not process the data, because they were invalid.', developerPrefix: '400 Bad Request: There is an issue with your data or the API endpoint.' },
  9011: { status: 404, userMessage: 'The resource was not found.', developerPrefix: '404 Not Found: The resource was not found.' },
  9012: { status: 400, userMessage: 'The webhook URI is not valid.', developerPrefix: '400 Bad Request: The webhook URI is not valid.' },
  9017: { status: 401, userMessage: 'The client application is not authorized.', developerPrefix: '401 Unauthorized: The client application is not authorized for this ORCID record.' },
  9028: { status: 404, userMessage: 'The webhook was not found.', developerPrefix: '404 Not Found: The webhook was not found.' },
  9038: { status: 403, userMessage: 'The client application is not allowed to use webhooks.', developerPrefix: '403 Forbidden: You do not have the required permissions.' },
  /** Ours: a per-client cap on webhooks. */
  9050: { status: 403, userMessage: 'The client has reached its limit of webhooks.', developerPrefix: '403 Forbidden: Webhook limit reached.' },
  /** Ours: rate limited. */
  9051: { status: 429, userMessage: 'Too many requests.', developerPrefix: '429 Too Many Requests: Slow down.' },
  /** Ours: a malformed request (bad query parameter, bad JSON body). */
  9052: { status: 400, userMessage: 'The request was not valid.', developerPrefix: '400 Bad Request: The request was not valid.' },
  /** Generic unknown endpoint / method. */
  9053: { status: 404, userMessage: 'The resource was not found.', developerPrefix: '404 Not Found: No such endpoint.' },
  9054: { status: 405, userMessage: 'Endpoint and method mismatch.', developerPrefix: '405 Method Not Allowed: Endpoint and method mismatch.' },
  9055: { status: 415, userMessage: 'Unsupported media type.', developerPrefix: '415 Unsupported Media Type: data must be in XML or JSON format.' },
  /** Ours: the request conflicts with the current state (e.g. a signing secret exists: rotate it). */
  9056: { status: 409, userMessage: 'The request conflicts with the current state.', developerPrefix: '409 Conflict: The request conflicts with the current state.' },
  /** Ours: the database is unreachable or busy; retry after the Retry-After delay. */
  9057: { status: 503, userMessage: 'The service is temporarily unavailable.', developerPrefix: '503 Service Unavailable: The database is unreachable or busy; retry shortly.' },
  /** Ours: `--records upstream` could not ask the upstream registry whether a record exists; retry after Retry-After. */
  9058: { status: 503, userMessage: 'The service is temporarily unavailable.', developerPrefix: '503 Service Unavailable: The upstream registry could not be reached; retry shortly.' },
  /** Generic server error; never expected. */
  9000: { status: 500, userMessage: 'There was an error connecting to ORCID.', developerPrefix: '500 Internal Server Error: There was an unexpected error.' },
} as const satisfies Record<number, ErrorCodeSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The one exception type of the API layer, rendered by one error handler. */
export class OrcidApiError extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;
  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
    opts: { status?: number; headers?: Record<string, string> } = {},
  ) {
    super(detail);
    this.status = opts.status ?? ERROR_CODES[code].status;
    this.headers = opts.headers ?? {};
  }

  body(): OrcidErrorBody {
    const spec: ErrorCodeSpec = ERROR_CODES[this.code];
    return {
      'response-code': this.status,
      'developer-message': `${spec.developerPrefix} Full validation error: ${this.detail}`,
      'user-message': spec.userMessage,
      'error-code': this.code,
      'more-info': MORE_INFO,
    };
  }
}

export interface OrcidErrorBody {
  'response-code': number;
  'developer-message': string;
  'user-message': string;
  'error-code': number;
  'more-info': string;
}

/** OAuth-form errors (token endpoint, bearer-token failures). */
export class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: 'invalid_client' | 'invalid_scope' | 'unsupported_grant_type' | 'invalid_request' | 'invalid_token' | 'invalid_grant' | 'slow_down',
    readonly description: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(description);
  }
  body(): { error: string; error_description: string } {
    return { error: this.error, error_description: this.description };
  }
}
