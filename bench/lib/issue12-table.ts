/*
 * Issue 12's table: every figure beside its reference from the same run, as an absolute and a
 * ratio, with its target and whether it was met, the CPU per operation and the CPU pressure.
 */
import { fmt, markdownTable } from './report.ts';
import type { PeerQueueResult } from './references.ts';
import type { ImportResult, ScaleResult } from './scale.ts';
import type { TargetResult } from './suite.ts';

export interface CliStart {
  versionP50Ms: number;
  nodeP50Ms: number;
  cpuPressurePct: number | null;
}

interface Row {
  figure: string;
  config: string;
  value: string;
  reference: string;
  ratio: number | null;
  target: string;
  met: boolean | null;
  cpu: string;
  pressure: number | null;
}

const pct = (n: number | null | undefined) => (n === null || n === undefined ? 'n/a' : `${n}%`);
const x = (r: number | null) => (r === null || !Number.isFinite(r) ? 'n/a' : `${fmt(r, 2)}×`);
const ms = (n: number | null | undefined, d = 1) => (n === null || n === undefined ? 'n/a' : `${fmt(n, d)} ms`);

export function issue12Rows(o: { hosts: number; results: TargetResult[]; peers: PeerQueueResult[]; peerBaselines: { perSecond: number }[]; scale: ScaleResult[]; imports: ImportResult[]; cli: CliStart | null }): Row[] {
  const rows: Row[] = [];
  const peerBest = o.peers.length ? Math.max(...o.peers.map((p) => p.perSecond)) : null;
  for (const r of o.results) {
    const sqlite = r.spec.store === 'sqlite';
    const h = r.versusHello;
    if (h) {
      const ratio = h.created.perSecond / h.helloBeforeCreated.perSecond;
      const need = sqlite ? 0.3 : 0.1;
      rows.push({ figure: 'registrations/s, 201', config: r.target, value: `${fmt(h.created.perSecond)}/s`, reference: `hello ${fmt(h.helloBeforeCreated.perSecond)}/s`, ratio, target: `≥ ${need}× hello`, met: ratio >= need, cpu: `${fmt(h.created.cpuMsPerRequest, 3)} ms (hello ${fmt(h.helloBeforeCreated.cpuMsPerRequest, 3)})`, pressure: h.created.cpuPressurePct });
      const r204 = h.existing.perSecond / h.helloBeforeExisting.perSecond;
      rows.push({ figure: 'registrations/s, 204', config: r.target, value: `${fmt(h.existing.perSecond)}/s`, reference: `hello ${fmt(h.helloBeforeExisting.perSecond)}/s`, ratio: r204, target: '—', met: null, cpu: `${fmt(h.existing.cpuMsPerRequest, 3)} ms (hello ${fmt(h.helloBeforeExisting.cpuMsPerRequest, 3)})`, pressure: h.existing.cpuPressurePct });
    }
    const need = sqlite ? 0.6 : 0.45;
    const cb = (label: string, all: boolean, tp: TargetResult['throughput'], base: TargetResult['baseline']) => {
      const ratio = tp.callbacksPerSecond / base.perSecond;
      const ahead = peerBest === null ? true : tp.callbacksPerSecond > peerBest;
      rows.push({
        figure: `callbacks/s, ${label}`, config: r.target, value: `${fmt(tp.callbacksPerSecond)}/s`, reference: `raw undici ${fmt(base.perSecond)}/s${all && o.peers.length ? `; ${o.peers.map((p) => `${p.peer.split(' ')[0]} ${fmt(p.perSecond)}/s`).join(', ')}` : ''}`,
        ratio, target: `≥ ${need}× raw${all ? '; ahead of both peers' : ''}`, met: ratio >= need && (!all || ahead),
        cpu: `${fmt(tp.serviceCpuMsPerCallback, 3)} ms (raw ${fmt(base.senderCpuMsPerRequest, 3)})`, pressure: tp.cpuPressurePct,
      });
    };
    cb(`${o.hosts} hosts`, true, r.throughput, r.baseline);
    if (r.fewHosts) cb(`${r.fewHosts.hosts} hosts`, false, r.fewHosts.throughput, r.fewHosts.baseline);
    for (const l of r.latencies) {
      const top = l.rate >= 1000;
      const limit = sqlite ? 50 : 100;
      rows.push({
        figure: `change→callback p50 / p99 at ${fmt(l.rate)}/s`, config: r.target, value: `${ms(l.latencyMs.p50)} / ${ms(l.latencyMs.p99)}`, reference: `achieved ${fmt(l.achievedRate)}/s; missing ${l.missing}`,
        ratio: null, target: top ? `p99 < ${limit} ms` : '—', met: top ? l.latencyMs.p99 < limit && l.missing === 0 : null, cpu: `${fmt(l.serviceCpuMsPerChange, 3)} ms/change`, pressure: l.cpuPressurePct,
      });
    }
    if (r.fanout) {
      const limit = sqlite ? 1000 : 2000;
      rows.push({
        figure: `one change, ${fmt(r.fanout.webhooks)} webhooks: last callback`, config: r.target, value: ms(r.fanout.lastCallbackMs, 0), reference: `first ${ms(r.fanout.firstCallbackMs, 0)}; ${r.fanout.received} received`,
        ratio: null, target: `< ${limit / 1000} s`, met: r.fanout.lastCallbackMs < limit && r.fanout.received === r.fanout.webhooks, cpu: `${fmt(r.fanout.serviceCpuMsPerCallback, 3)} ms/callback`, pressure: r.fanout.cpuPressurePct,
      });
    }
  }
  for (const p of o.peers) rows.push({ figure: `callbacks/s (peer), ${o.hosts} hosts`, config: p.peer, value: `${fmt(p.perSecond)}/s`, reference: `${p.received} received, ${p.duplicates} duplicates`, ratio: null, target: '—', met: null, cpu: `${fmt(p.cpuMsPerCallback, 3)} ms`, pressure: p.cpuPressurePct });
  for (const s of o.scale) {
    const within = (big: number, small: number) => big >= 0.8 * small;
    rows.push({ figure: 'registrations/s by the client holding 90 %', config: s.target, value: `${fmt(s.big.bigClientPerSecond)}/s`, reference: `small db ${fmt(s.small.bigClientPerSecond)}/s`, ratio: s.big.bigClientPerSecond / s.small.bigClientPerSecond, target: 'within 20 %', met: within(s.big.bigClientPerSecond, s.small.bigClientPerSecond), cpu: `loop max ${ms(s.big.bigClientLoopMaxMs)}`, pressure: s.big.cpuPressurePct });
    rows.push({ figure: 'registrations/s by a new client', config: s.target, value: `${fmt(s.big.newClientPerSecond)}/s`, reference: `small db ${fmt(s.small.newClientPerSecond)}/s`, ratio: s.big.newClientPerSecond / s.small.newClientPerSecond, target: 'within 20 %', met: within(s.big.newClientPerSecond, s.small.newClientPerSecond), cpu: '', pressure: s.big.cpuPressurePct });
    for (const [name, key] of [['`/admin/api/overview`', 'overview'], ['`/metrics`', 'metrics'], ['`GET /webhooks?state=failing`', 'failing']] as const) {
      const b = s.big[key];
      const sm = s.small[key];
      const ratio = b.requestMs.p50 / sm.requestMs.p50;
      rows.push({ figure: `${name} p50, event-loop max`, config: s.target, value: `${ms(b.requestMs.p50)}, loop ${ms(b.loopMaxMs)}`, reference: `small db ${ms(sm.requestMs.p50)}, loop ${ms(sm.loopMaxMs)}`, ratio, target: 'within 20 %; no block > 10 ms', met: ratio <= 1.2 && b.loopMaxMs <= 10, cpu: '', pressure: s.big.cpuPressurePct });
    }
    rows.push({ figure: 'a change\'s latency p50 / p99 (50/s)', config: s.target, value: `${ms(s.big.changeLatencyMs.p50)} / ${ms(s.big.changeLatencyMs.p99)}`, reference: `small db ${ms(s.small.changeLatencyMs.p50)} / ${ms(s.small.changeLatencyMs.p99)}`, ratio: s.big.changeLatencyMs.p99 / s.small.changeLatencyMs.p99, target: '—', met: null, cpu: '', pressure: s.big.cpuPressurePct });
    rows.push({ figure: 'RSS of the service process', config: s.target, value: `${fmt(s.big.rssMb)} MB`, reference: `small db ${fmt(s.small.rssMb)} MB (in-process: includes the bench's own setup)`, ratio: s.big.rssMb && s.small.rssMb ? s.big.rssMb / s.small.rssMb : null, target: '—', met: null, cpu: `build ${fmt(s.buildSeconds, 1)} s`, pressure: null });
  }
  for (const i of o.imports) rows.push({ figure: `\`records import\` of ${fmt(i.lines)} lines`, config: i.target, value: `${fmt(i.wallSeconds, 1)} s, ${fmt(i.linesPerSecond)} lines/s`, reference: `max RSS ${fmt(i.maxRssMb)} MB`, ratio: null, target: '—', met: null, cpu: '', pressure: i.cpuPressurePct });
  if (o.cli) rows.push({ figure: 'CLI start, `--version` p50', config: 'compiled', value: ms(o.cli.versionP50Ms, 0), reference: `node -e 0 ${ms(o.cli.nodeP50Ms, 0)}`, ratio: o.cli.versionP50Ms / o.cli.nodeP50Ms, target: '< 0.3 s', met: o.cli.versionP50Ms < 300, cpu: '', pressure: o.cli.cpuPressurePct });
  return rows;
}

export function issue12Table(rows: Row[]): string {
  return markdownTable(
    ['Figure', 'Configuration', 'Value', 'Same run\'s reference', 'Ratio', 'Target', 'Met', 'CPU per op', 'CPU pressure'],
    rows.map((r) => [r.figure, r.config, r.value, r.reference, x(r.ratio), r.target, r.met === null ? '—' : r.met ? 'met' : '**not met**', r.cpu, pct(r.pressure)]),
    ['l', 'l', 'r', 'l', 'r', 'l', 'l', 'l', 'r'],
  );
}
