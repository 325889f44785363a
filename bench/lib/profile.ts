import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { fileURLToPath } from 'node:url';

/**
 * With BENCH_CPU_PROFILE=1, records a V8 CPU profile of this process (the in-process service)
 * while fn runs and writes it to bench/results/<name>.cpuprofile (open it in Chrome DevTools or
 * speedscope). Otherwise just runs fn.
 */
export async function profiled<T>(name: string, fn: () => Promise<T>): Promise<T> {
  if (!process.env.BENCH_CPU_PROFILE) return fn();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    const file = fileURLToPath(new URL(`../results/${name.replace(/[^\w.-]+/g, '-')}.cpuprofile`, import.meta.url));
    writeFileSync(file, JSON.stringify(profile));
    process.stderr.write(`CPU profile: ${file}\n`);
    session.disconnect();
  }
}
