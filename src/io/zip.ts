// Minimal ZIP reader/writer for the containers this tool meets: PyTorch's zip checkpoints (entries
// stored uncompressed, possibly zip64) and numpy's .npz (stored or deflated). The reader reads the
// central directory, then each entry on demand through positional reads, so a large checkpoint is
// never read twice nor held whole. CRC-32 is verified on every entry read.
import { closeSync, openSync, readSync } from 'node:fs';
import { crc32, inflateRawSync } from 'node:zlib';
import { UserError } from '../util/errors.js';
import { requireFile } from '../util/fs.js';

export interface ZipEntry {
  name: string;
  method: number; // 0 stored, 8 deflate
  crc: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

export interface ZipReader {
  path: string;
  entries: ZipEntry[];
  has(name: string): boolean;
  /** The entry's uncompressed bytes (CRC checked). */
  read(name: string): Uint8Array;
  close(): void;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOC = 0x07064b50;
const SIG_CEN = 0x02014b50;
const SIG_LOC = 0x04034b50;

function readAt(fd: number, position: number, length: number, path: string): Buffer {
  const buf = Buffer.alloc(length);
  let off = 0;
  while (off < length) {
    const n = readSync(fd, buf, off, length - off, position + off);
    if (n === 0)
      throw new UserError(`'${path}' is truncated: a zip record at byte ${position} runs past the end of the file`);
    off += n;
  }
  return buf;
}

export function isZip(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}

export function openZip(path: string): ZipReader {
  const size = requireFile(path, 'zip file');
  const fd = openSync(path, 'r');
  try {
    // 1. Find the end-of-central-directory record in the last 64 KiB (+22 bytes).
    const tailLen = Math.min(size, 65536 + 22);
    const tail = readAt(fd, size - tailLen, tailLen, path);
    let eocd = -1;
    for (let i = tail.length - 22; i >= 0; i--)
      if (tail.readUInt32LE(i) === SIG_EOCD) {
        eocd = i;
        break;
      }
    if (eocd < 0)
      throw new UserError(
        `'${path}' is not a complete zip archive (no end-of-central-directory record): the file is truncated or corrupt`,
      );
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    // 2. zip64: the locator sits just before the EOCD record.
    const loc = eocd - 20;
    if (loc >= 0 && tail.readUInt32LE(loc) === SIG_EOCD64_LOC) {
      const eocd64Off = Number(tail.readBigUInt64LE(loc + 8));
      const rec = readAt(fd, eocd64Off, 56, path);
      if (rec.readUInt32LE(0) !== SIG_EOCD64) throw new UserError(`'${path}' has a corrupt zip64 directory`);
      count = Number(rec.readBigUInt64LE(32));
      cdSize = Number(rec.readBigUInt64LE(40));
      cdOffset = Number(rec.readBigUInt64LE(48));
    }
    if (cdOffset + cdSize > size)
      throw new UserError(`'${path}' is truncated: its zip directory points past the end of the file`);
    // 3. Central directory.
    const cd = readAt(fd, cdOffset, cdSize, path);
    const entries: ZipEntry[] = [];
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CEN)
        throw new UserError(`'${path}' has a corrupt zip directory (entry ${i})`);
      const method = cd.readUInt16LE(p + 10);
      const crc = cd.readUInt32LE(p + 16);
      let compressedSize = cd.readUInt32LE(p + 20);
      let usize = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let localHeaderOffset = cd.readUInt32LE(p + 42);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      // zip64 extended information (header id 1) replaces the 0xFFFFFFFF fields, in order
      let e = p + 46 + nameLen;
      const eEnd = e + extraLen;
      while (e + 4 <= eEnd) {
        const id = cd.readUInt16LE(e);
        const len = cd.readUInt16LE(e + 2);
        if (id === 1) {
          let q = e + 4;
          if (usize === 0xffffffff) {
            usize = Number(cd.readBigUInt64LE(q));
            q += 8;
          }
          if (compressedSize === 0xffffffff) {
            compressedSize = Number(cd.readBigUInt64LE(q));
            q += 8;
          }
          if (localHeaderOffset === 0xffffffff) {
            localHeaderOffset = Number(cd.readBigUInt64LE(q));
            q += 8;
          }
        }
        e += 4 + len;
      }
      entries.push({ name, method, crc, compressedSize, size: usize, localHeaderOffset });
      p += 46 + nameLen + extraLen + commentLen;
    }
    const byName = new Map(entries.map((x) => [x.name, x]));
    let closed = false;
    return {
      path,
      entries,
      has: (name) => byName.has(name),
      read(name) {
        const ent = byName.get(name);
        if (!ent)
          throw new UserError(`'${path}' is missing the zip record '${name}': the archive is incomplete or corrupt`);
        const lh = readAt(fd, ent.localHeaderOffset, 30, path);
        if (lh.readUInt32LE(0) !== SIG_LOC)
          throw new UserError(`'${path}': zip record '${name}' has a corrupt local header`);
        const dataOff = ent.localHeaderOffset + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
        if (dataOff + ent.compressedSize > size)
          throw new UserError(`'${path}' is truncated: zip record '${name}' runs past the end of the file`);
        const raw = readAt(fd, dataOff, ent.compressedSize, path);
        let data: Uint8Array;
        if (ent.method === 0) data = raw;
        else if (ent.method === 8) {
          try {
            data = inflateRawSync(raw);
          } catch (err) {
            throw new UserError(
              `'${path}': zip record '${name}' does not inflate (${(err as Error).message}): the file is corrupt`,
            );
          }
        } else
          throw new UserError(
            `'${path}': zip record '${name}' uses compression method ${ent.method}; only stored (0) and deflate (8) are supported`,
          );
        if (data.byteLength !== ent.size)
          throw new UserError(
            `'${path}': zip record '${name}' has ${data.byteLength} bytes, its directory says ${ent.size}: the file is corrupt`,
          );
        if (crc32(data) >>> 0 !== ent.crc >>> 0)
          throw new UserError(`'${path}': zip record '${name}' fails its CRC-32 check: the file is corrupt`);
        return data;
      },
      close() {
        if (!closed) closeSync(fd);
        closed = true;
      },
    };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/**
 * Serialises entries as a stored (uncompressed) zip archive, as numpy's `savez` writes one.
 * Entries are 64-byte aligned through the local header's extra field so readers can map them.
 */
export function zipChunks(files: { name: string; data: Uint8Array }[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const f of files) {
    const name = Buffer.from(f.name, 'utf8');
    const crc = crc32(f.data) >>> 0;
    if (f.data.byteLength >= 0xffffffff || offset >= 0xffffffff)
      throw new UserError(`zip entry '${f.name}' is too large for this writer (4 GiB limit)`);
    const pad = (64 - ((offset + 30 + name.length + 4) % 64)) % 64;
    const extra = Buffer.alloc(pad === 0 ? 0 : pad + 4);
    if (pad > 0) {
      extra.writeUInt16LE(0x4650, 0); // private padding id
      extra.writeUInt16LE(pad, 2);
    }
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(SIG_LOC, 0);
    lh.writeUInt16LE(20, 4); // version needed
    lh.writeUInt16LE(0x0800, 6); // utf-8 names
    lh.writeUInt16LE(0, 8); // stored
    lh.writeUInt32LE(0x00210000, 10); // 1980-01-01 00:00 (fixed: reproducible bytes)
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(f.data.byteLength, 18);
    lh.writeUInt32LE(f.data.byteLength, 22);
    lh.writeUInt16LE(name.length, 26);
    lh.writeUInt16LE(extra.length, 28);
    chunks.push(lh, name, extra, f.data);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(SIG_CEN, 0);
    ch.writeUInt16LE(20, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt16LE(0x0800, 8);
    ch.writeUInt16LE(0, 10);
    ch.writeUInt32LE(0x00210000, 12);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(f.data.byteLength, 20);
    ch.writeUInt32LE(f.data.byteLength, 24);
    ch.writeUInt16LE(name.length, 28);
    ch.writeUInt32LE(offset, 42);
    central.push(ch, name);
    offset += 30 + name.length + extra.length + f.data.byteLength;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(SIG_EOCD, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  chunks.push(cd, end);
  return chunks;
}
