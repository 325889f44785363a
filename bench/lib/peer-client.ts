import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ExpectResult, LatencyResult, PeerCommand, PeerReply, RegisterResult } from './common.ts';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** The orchestrator's handle on the peer child (receivers and load generators). */
export class Peer {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  bases: string[] = [];

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (m: PeerReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`peer: ${m.error}`));
    });
    child.on('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`peer exited (${code ?? signal})`));
      this.pending.clear();
    });
  }

  /** Starts the peer child and its receivers: `hosts` servers spread over 127.0.0.1..127.0.0.<addresses>. */
  static async start(hosts: number, addresses: number): Promise<Peer> {
    const child = fork(fileURLToPath(new URL('./peer.ts', import.meta.url)), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const peer = new Peer(child);
    peer.bases = (await peer.call({ cmd: 'listen', hosts, addresses })) as string[];
    return peer;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private call(c: DistributiveOmit<PeerCommand, 'id'>): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send({ ...c, id } as PeerCommand);
    });
  }

  arm(count: number): Promise<unknown> {
    return this.call({ cmd: 'arm', count });
  }

  wait(idleMs: number): Promise<ExpectResult> {
    return this.call({ cmd: 'wait', idleMs }) as Promise<ExpectResult>;
  }

  register(o: { apiUrl: string; tokens: string[]; from: number; count: number; concurrency: number; expect: number }): Promise<RegisterResult> {
    return this.call({ cmd: 'register', ...o }) as Promise<RegisterResult>;
  }

  latency(o: { apiUrl: string; adminToken: string; rate: number; seconds: number; records: number; connections: number; graceMs: number }): Promise<LatencyResult> {
    return this.call({ cmd: 'latency', ...o }) as Promise<LatencyResult>;
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    await this.call({ cmd: 'close' }).catch(() => undefined);
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
}
