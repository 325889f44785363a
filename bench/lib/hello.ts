/*
 * The reference for registrations/s: a fastify "hello world" in a process of its own, answering
 * every PUT with 200 {"hello":"world"}. Same machine, same load generator, same connections as the
 * registrations it stands beside. Prints its URL on stdout, then serves until SIGTERM.
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.put('/*', async function hello() {
  return { hello: 'world' };
});
const url = await app.listen({ port: 0, host: '127.0.0.1' });
process.stdout.write(`${url}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
