/** A progress bar on a terminal; plain periodic lines otherwise (logs, pipes). */
export function progressReporter(label: string, stream: NodeJS.WriteStream = process.stderr) {
  const tty = stream.isTTY === true;
  let lastPlain = 0;
  return {
    update(done: number, total: number | null, detail = '') {
      if (tty) {
        const width = 30;
        const frac = total ? Math.min(1, done / total) : 0;
        const bar = total ? '#'.repeat(Math.round(frac * width)).padEnd(width, '.') : ''.padEnd(width, '.');
        const pct = total ? `${(frac * 100).toFixed(0).padStart(3)}%` : '';
        stream.write(`\r${label} [${bar}] ${pct} ${detail}`.padEnd(80));
      } else if (Date.now() - lastPlain > 2000) {
        lastPlain = Date.now();
        stream.write(`${label}: ${detail}\n`);
      }
    },
    done() {
      if (tty) stream.write('\n');
    },
  };
}
