/**
 * The one registry of ORCID-format API errors. Codes, statuses and texts are ORCID's own where ORCID
 * has them: `developerMessage` and `userMessage` are the `apiError.<code>.*` entries of
 * ORCID-Source orcid-core/src/main/resources/i18n/api_en.properties, statuses those of
 * OrcidCoreExceptionMapper. `${name}` is filled from the error's params, as ORCID's StrSubstitutor
 * does. Codes we add are marked; they keep ORCID's style.
 */
export const MORE_INFO = 'https://members.orcid.org/api/resources/troubleshooting';

/** ORCID's "apiError.validation.message", between the code's text and the exception's own message. */
const VALIDATION_MESSAGE = 'Full validation error:';

interface ErrorCodeSpec {
  status: number;
  userMessage: string;
  developerMessage: string;
  /** Used instead of developerMessage when its ${params} are not given (our own uses of the code). */
  developerFallback?: string;
}

export const ERROR_CODES = {
  /** ORCID: JAX-RS errors on its endpoints (no route 404, 405, 406, 415). We also use it for a malformed ORCID iD, which ORCID never checks. */
  9001: { status: 400, userMessage: 'ORCID could not process the data, because they were invalid.', developerMessage: '400 Bad Request: There is an issue with your data or the API endpoint. 405 Method Not Allowed: Endpoint and method mismatch. 415 Unsupported Media Type: data must be in XML or JSON format.' },
  9011: { status: 404, userMessage: 'The resource was not found.', developerMessage: '404 Not Found: The ORCID record or item was not found.' },
  9012: { status: 400, userMessage: 'The client application made a bad request to the ORCID API.', developerMessage: 'The client application made a bad request to the ORCID API.' },
  9014: { status: 403, userMessage: 'The client application is forbidden to perform the action.', developerMessage: 'The client application is forbidden to perform the action.' },
  9017: { status: 401, userMessage: 'The client application is not authorized.', developerMessage: '401 Unauthorized: The client application is not authorized for this ORCID record.' },
  9028: { status: 404, userMessage: 'The resource was not found.', developerMessage: 'No webhook found for orcid=${orcid}, and uri=${uri}.', developerFallback: '404 Not Found: The webhook was not found.' },
  9038: { status: 403, userMessage: 'You don\'t have the permissions to execute this action.', developerMessage: '409 Conflict: The item has a limited or private visibility and your request doesn\'t have the required scope.' },
  /** Ours: a per-client cap on webhooks. */
  9050: { status: 403, userMessage: 'The client has reached its limit of webhooks.', developerMessage: '403 Forbidden: Webhook limit reached.' },
  /** Ours: rate limited. */
  9051: { status: 429, userMessage: 'Too many requests.', developerMessage: '429 Too Many Requests: Slow down.' },
  /** Ours: a malformed request (bad query parameter, bad JSON body). */
  9052: { status: 400, userMessage: 'The request was not valid.', developerMessage: '400 Bad Request: The request was not valid.' },
  /** Ours (beyond ORCID's endpoints): unknown endpoint / method / media type. */
  9053: { status: 404, userMessage: 'The resource was not found.', developerMessage: '404 Not Found: No such endpoint.' },
  9054: { status: 405, userMessage: 'Endpoint and method mismatch.', developerMessage: '405 Method Not Allowed: Endpoint and method mismatch.' },
  9055: { status: 415, userMessage: 'Unsupported media type.', developerMessage: '415 Unsupported Media Type: data must be in XML or JSON format.' },
  /** Ours: the request conflicts with the current state (e.g. a signing secret exists: rotate it). */
  9056: { status: 409, userMessage: 'The request conflicts with the current state.', developerMessage: '409 Conflict: The request conflicts with the current state.' },
  /** Ours: the database is unreachable or busy; retry after the Retry-After delay. */
  9057: { status: 503, userMessage: 'The service is temporarily unavailable.', developerMessage: '503 Service Unavailable: The database is unreachable or busy; retry shortly.' },
  /** Ours: `--records upstream` could not ask the upstream registry whether a record exists; retry after Retry-After. */
  9058: { status: 503, userMessage: 'The service is temporarily unavailable.', developerMessage: '503 Service Unavailable: The upstream registry could not be reached; retry shortly.' },
  /** ORCID's generic server error text; never expected. */
  9000: { status: 500, userMessage: 'There was an error connecting to ORCID.', developerMessage: 'There was an error connecting to ORCID.' },
} as const satisfies Record<number, ErrorCodeSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** ORCID's StrSubstitutor: `${name}` replaced by the param, unknown names left as they are. */
function substitute(text: string, params: Record<string, string>): string {
  return text.replace(/\$\{([^}]+)\}/g, (whole, name: string) => params[name] ?? whole);
}

/**
 * The one exception type of the API layer, rendered by one error handler. `detail` is the
 * exception's own message, which ORCID appends after "Full validation error:"; null when ORCID's
 * exception has none (its record and webhook not-found errors).
 */
export class OrcidApiError extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly params: Record<string, string> | null;
  constructor(
    readonly code: ErrorCode,
    readonly detail: string | null,
    opts: { status?: number; headers?: Record<string, string>; params?: Record<string, string> } = {},
  ) {
    super(detail ?? ERROR_CODES[code].developerMessage);
    this.status = opts.status ?? ERROR_CODES[code].status;
    this.headers = opts.headers ?? {};
    this.params = opts.params ?? null;
  }

  body(): OrcidErrorBody {
    const spec: ErrorCodeSpec = ERROR_CODES[this.code];
    const params = this.params ?? {};
    const template = this.params === null && spec.developerFallback ? spec.developerFallback : spec.developerMessage;
    let developer = this.detail === null ? template : `${template} ${VALIDATION_MESSAGE} ${this.detail}`;
    // Our 9052 answers other statuses too (408, 413, 414, 431): its text starts with the status it
    // is sent with. (9001 keeps ORCID's own text, which names 400, 405 and 415 at once.)
    if (this.code === 9052 && this.status !== spec.status && STATUS_REASONS[this.status]) {
      developer = developer.replace(/^400 Bad Request/, `${this.status} ${STATUS_REASONS[this.status]}`);
    }
    return {
      'response-code': this.status,
      'developer-message': substitute(developer, params),
      'user-message': substitute(spec.userMessage, params),
      'error-code': this.code,
      'more-info': MORE_INFO,
    };
  }
}

/** ORCID's OrcidNotFoundException for a record: 404 / 9011, no further message. */
export const recordNotFound = (orcid: string) => new OrcidApiError(9011, null, { params: { orcid } });

/** ORCID's OrcidWebhookNotFoundException: 404 / 9028 "No webhook found for orcid=…, and uri=…." */
export const webhookNotFound = (orcid: string, uri: string) => new OrcidApiError(9028, null, { params: { orcid, uri } });

/** ORCID's OrcidBadRequestException from apiError.badrequest_incorrect_webhook.exception: 400 / 9012. */
export const incorrectWebhookUri = (uri: string) => new OrcidApiError(9012, `Webhook uri: ${uri} is syntactically incorrect`);

const JAX_RS_REASONS: Record<number, string> = { 404: 'Not Found', 405: 'Method Not Allowed', 406: 'Not Acceptable', 415: 'Unsupported Media Type' };
/** Reason phrases of the statuses the 9052 refusals are sent with besides 400. */
const STATUS_REASONS: Record<number, string> = {
  408: 'Request Timeout', 411: 'Length Required', 413: 'Content Too Large', 414: 'URI Too Long', 431: 'Request Header Fields Too Large',
};

/** What Jersey's own exceptions (no route, wrong method, media type) become on ORCID's endpoints: 9001 with their status. */
export const jaxRsError = (status: 404 | 405 | 406 | 415, headers: Record<string, string> = {}) =>
  new OrcidApiError(9001, `HTTP ${status} ${JAX_RS_REASONS[status]}`, { status, headers });

export interface OrcidErrorBody {
  'response-code': number;
  'developer-message': string;
  'user-message': string;
  'error-code': number;
  'more-info': string;
}

/** OAuth-form errors (token endpoint, bearer-token failures: ORCID's APIAuthenticationEntryPoint). */
export class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: 'invalid_client' | 'unauthorized_client' | 'invalid_scope' | 'unsupported_grant_type' | 'invalid_request' | 'invalid_token' | 'invalid_grant' | 'slow_down' | 'forbidden',
    readonly description: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(description);
  }
  body(): { error: string; error_description: string } {
    return { error: this.error, error_description: this.description };
  }
}
