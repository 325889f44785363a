/*
 * npm run bench:scale: npm run bench with the scale run at 1,000,000 webhooks and a `records
 * import` of 1,000,000 lines (BENCH_SCALE / BENCH_IMPORT_LINES override).
 */
process.env.BENCH_SCALE ||= '1000000';
await import('./run.ts');
