/**
 * Library entry point: embed the service, or use its parts.
 *
 *   import { resolveConfig, startService } from 'orcid-webhooks';
 *   const svc = await startService(resolveConfig({ port: '0' }));
 */
export { startService, openStore, type Service, type StartOptions } from './service.ts';
export { buildApp, type AppDeps } from './api/app.ts';
export { createStore, isPostgresUrl, type StoreOptions } from './store/index.ts';
export type * from './store/types.ts';
export { resolveConfig, testConfig, ConfigError, SETTINGS, type Config } from './config.ts';
export { DeliveryWorker, type WorkerOptions, type AttemptEvent, type RequestBuilder } from './delivery/worker.ts';
export { createSender, type SendRequest, type SendResult } from './delivery/sender.ts';
export { checkOrcid, isValidOrcid, checkCharacter, mintOrcid } from './domain/orcid-id.ts';
export { TargetPolicy } from './domain/ssrf.ts';
export { validateCallbackUrl } from './domain/callback-url.ts';
export { parseRetrySchedule, parseDuration, type RetrySchedule } from './domain/retry-schedule.ts';
export { OrcidApiError, OAuthError, ERROR_CODES } from './domain/errors.ts';
export { createApiClient } from './ops/clients.ts';
export { createLogger } from './logger.ts';
export { VERSION } from './version.ts';
