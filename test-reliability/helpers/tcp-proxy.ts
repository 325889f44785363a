/*
 * A TCP proxy on 127.0.0.1 (node:net) between the service and PostgreSQL, with two ways to fail:
 *  - cut(): every connection destroyed and the port closed, so new connections are refused
 *    (ECONNREFUSED), as when the database is down;
 *  - stall(): connections stay open but nothing passes either way, and new ones are accepted and
 *    held, as in a network partition or a frozen database host (the peer never answers).
 * restore() forwards again (on the same port; stalled connections resume where they were).
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  /** Client connections open now. */
  open(): number;
  state(): 'forwarding' | 'cut' | 'stalled';
  /** Destroys every connection (both sides) and refuses new ones until restore(). */
  cut(): Promise<void>;
  /** Stops forwarding in both directions and holds new connections until restore(). */
  stall(): void;
  /** Forwards again, on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket | null;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let accepted = 0;
  let state: 'forwarding' | 'cut' | 'stalled' = 'forwarding';

  const guard = (s: Socket) => {
    // Resets are the point of this proxy: never let one be an unhandled 'error'.
    s.on('error', () => s.destroy());
  };
  const link = (p: Pair) => {
    if (!p.upstream) {
      const upstream = connect(target.port, target.host);
      guard(upstream);
      p.upstream = upstream;
      upstream.on('close', () => p.client.destroy());
      p.client.on('close', () => upstream.destroy());
    }
    p.client.pipe(p.upstream);
    p.upstream.pipe(p.client);
    p.client.resume();
    p.upstream.resume();
  };
  const unlink = (p: Pair) => {
    p.client.unpipe();
    p.client.pause();
    if (p.upstream) {
      p.upstream.unpipe();
      p.upstream.pause();
    }
  };
  const onConnection = (client: Socket) => {
    accepted++;
    guard(client);
    const p: Pair = { client, upstream: null };
    pairs.add(p);
    client.on('close', () => pairs.delete(p));
    if (state === 'forwarding') link(p);
    else client.pause();
  };

  const listen = async (port: number): Promise<Server> => {
    const s = createServer(onConnection);
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
    });
    return s;
  };
  let server: Server | null = await listen(0);
  const port = (server.address() as AddressInfo).port;

  const stopListening = async () => {
    const s = server;
    server = null;
    const closed = s ? new Promise<void>((resolve) => s.close(() => resolve())) : Promise.resolve();
    for (const p of pairs) {
      p.client.destroy();
      p.upstream?.destroy();
    }
    pairs.clear();
    await closed;
  };

  return {
    port,
    accepted: () => accepted,
    open: () => pairs.size,
    state: () => state,
    async cut() {
      state = 'cut';
      await stopListening();
    },
    stall() {
      if (state !== 'forwarding') throw new Error(`cannot stall a proxy that is ${state}`);
      state = 'stalled';
      for (const p of pairs) unlink(p);
    },
    async restore() {
      if (state === 'cut') server = await listen(port);
      state = 'forwarding';
      for (const p of pairs) if (!p.client.destroyed) link(p);
    },
    async close() {
      state = 'cut';
      await stopListening();
    },
  };
}
