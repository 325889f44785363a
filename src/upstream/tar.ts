import { Transform, type TransformCallback } from 'node:stream';

/*
 * Streams the content of one member of a tar archive (ustar/GNU; 512-byte headers, sizes in
 * octal): enough to read ORCID's lambda file without a dependency or the file in memory.
 */

const BLOCK = 512;

export class TarMemberStream extends Transform {
  private buf: Buffer = Buffer.alloc(0);
  /** Bytes of the current member's content still to pass on (or to skip), and its padding. */
  private remaining = 0;
  private padding = 0;
  private emitting = false;
  private found = false;
  private finished = false;
  /** The name of the member found. */
  member: string | null = null;

  constructor(private readonly wanted: (name: string) => boolean) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    try {
      this.drain();
      done();
    } catch (e) {
      done(e as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    done(this.found ? null : new Error('the archive has no last_modified.csv member'));
  }

  private drain(): void {
    while (!this.finished) {
      if (this.remaining > 0) {
        if (!this.buf.length) return;
        const n = Math.min(this.remaining, this.buf.length);
        if (this.emitting) this.push(this.buf.subarray(0, n));
        this.buf = this.buf.subarray(n);
        this.remaining -= n;
        if (this.remaining === 0 && this.emitting) {
          this.finished = true;
          this.push(null);
        }
        continue;
      }
      if (this.padding > 0) {
        const n = Math.min(this.padding, this.buf.length);
        this.buf = this.buf.subarray(n);
        this.padding -= n;
        if (this.padding > 0) return;
        continue;
      }
      if (this.buf.length < BLOCK) return;
      const header = this.buf.subarray(0, BLOCK);
      this.buf = this.buf.subarray(BLOCK);
      if (header.every((b) => b === 0)) continue; // end-of-archive blocks
      const field = (start: number, len: number) => header.subarray(start, start + len).toString('latin1').replace(/\0.*$/s, '').trim();
      const prefix = field(345, 155);
      const name = (prefix ? `${prefix}/` : '') + field(0, 100);
      const size = parseInt(field(124, 12) || '0', 8);
      if (!Number.isFinite(size) || !header.subarray(257, 262).toString('latin1').startsWith('ustar')) throw new Error('not a tar archive');
      const type = String.fromCharCode(header[156]!);
      this.remaining = size;
      this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
      this.emitting = (type === '0' || type === '\0') && this.wanted(name);
      if (this.emitting) {
        this.found = true;
        this.member = name;
        if (size === 0) {
          this.finished = true;
          this.push(null);
        }
      }
    }
  }
}
