import { open, readFile } from 'node:fs/promises';

/**
 * A GGUF (v3) writer and the small part of a reader the tiny llama generator needs:
 * the format llama.cpp loads (github.com/ggml-org/ggml docs/gguf.md). Header, typed
 * key/values, tensor infos, then each tensor's data aligned to 32 bytes. Tensors are
 * written one at a time, so a model of half a gigabyte never sits whole in memory.
 */

export const GgufType = { UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12 } as const;
/** ggml tensor types used here. */
export const GgmlType = { F32: 0, Q8_0: 8 } as const;
/** llama.cpp's general.file_type values. */
export const FileType = { ALL_F32: 0, MOSTLY_Q8_0: 7 } as const;

const ALIGNMENT = 32;
const Q8_BLOCK = 32;
const SCALAR_SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

export type KeyValue = { key: string; type: 'string'; value: string } | { key: string; type: 'u32'; value: number } | { key: string; type: 'f32'; value: number } | { key: string; raw: Buffer };

export interface TensorSpec {
  name: string;
  /** Outermost dimension first (row-major): [rows, columns], as llama.cpp names its tensors. */
  shape: number[];
  type: (typeof GgmlType)[keyof typeof GgmlType];
  /** Fills the tensor's float values row-major (it is quantized after, when the type says so). */
  fill(values: Float32Array): void;
}

function ggufString(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(bytes.length));
  return Buffer.concat([len, bytes]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

function encodeKeyValue(kv: KeyValue): Buffer {
  if ('raw' in kv) return kv.raw;
  const key = ggufString(kv.key);
  if (kv.type === 'string') return Buffer.concat([key, u32(GgufType.STRING), ggufString(kv.value)]);
  const value = Buffer.alloc(4);
  if (kv.type === 'u32') value.writeUInt32LE(kv.value);
  else value.writeFloatLE(kv.value);
  return Buffer.concat([key, u32(kv.type === 'u32' ? GgufType.UINT32 : GgufType.FLOAT32), value]);
}

const elements = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function dataBytes(spec: TensorSpec): number {
  const n = elements(spec.shape);
  if (spec.type === GgmlType.F32) return n * 4;
  if (spec.shape.at(-1)! % Q8_BLOCK !== 0) throw new Error(`${spec.name}: q8_0 rows must be a multiple of ${Q8_BLOCK}`);
  return (n / Q8_BLOCK) * (2 + Q8_BLOCK);
}

const pad = (n: number) => (ALIGNMENT - (n % ALIGNMENT)) % ALIGNMENT;

/** Writes a GGUF file: `keyValues` in order (general.architecture first, as llama.cpp's writers do), then the tensors. */
export async function writeGguf(file: string, keyValues: KeyValue[], tensors: TensorSpec[]): Promise<void> {
  const infos: Buffer[] = [];
  let offset = 0;
  for (const t of tensors) {
    // ggml counts dimensions innermost first: the row-major shape reversed.
    const dims = [...t.shape].reverse();
    infos.push(Buffer.concat([ggufString(t.name), u32(dims.length), ...dims.map(u64), u32(t.type), u64(offset)]));
    offset += dataBytes(t);
    offset += pad(offset);
  }
  const head = Buffer.concat([Buffer.from('GGUF', 'latin1'), u32(3), u64(tensors.length), u64(keyValues.length), ...keyValues.map(encodeKeyValue), ...infos]);
  const handle = await open(file, 'w');
  try {
    let position = 0;
    const write = async (b: Buffer) => {
      await handle.write(b, 0, b.length, position);
      position += b.length;
    };
    await write(head);
    await write(Buffer.alloc(pad(position)));
    for (const t of tensors) {
      const values = new Float32Array(elements(t.shape));
      t.fill(values);
      await write(t.type === GgmlType.F32 ? Buffer.from(values.buffer, values.byteOffset, values.byteLength) : quantizeQ8_0(values));
      await write(Buffer.alloc(pad(position)));
    }
  } finally {
    await handle.close();
  }
}

/** ggml's Q8_0: blocks of 32 values, each an f16 scale (max |x| / 127) and 32 signed bytes. */
export function quantizeQ8_0(values: Float32Array): Buffer {
  const blocks = values.length / Q8_BLOCK;
  const out = Buffer.alloc(blocks * (2 + Q8_BLOCK));
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let i = 0; i < Q8_BLOCK; i++) amax = Math.max(amax, Math.abs(values[b * Q8_BLOCK + i]!));
    const d = amax / 127;
    const inv = d ? 1 / d : 0;
    const at = b * (2 + Q8_BLOCK);
    out.writeUInt16LE(toHalf(d), at);
    for (let i = 0; i < Q8_BLOCK; i++) out.writeInt8(Math.round(values[b * Q8_BLOCK + i]! * inv), at + 2 + i);
  }
  return out;
}

/** IEEE 754 half precision, rounded to nearest (the scales are small positive numbers). */
export function toHalf(value: number): number {
  const f = new Float32Array([value]);
  const x = new Uint32Array(f.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = ((x >>> 23) & 0xff) - 127 + 15;
  let mantissa = x & 0x7fffff;
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - exponent;
    return sign | ((mantissa + (1 << (shift - 1))) >> shift);
  }
  if (exponent >= 31) return sign | 0x7c00;
  const half = sign | (exponent << 10) | ((mantissa + 0x1000) >> 13);
  return half;
}

/**
 * The key/values of a GGUF file whose key starts with `prefix`, each as its raw bytes
 * (key, type and value), so they are copied with their exact types; and the element
 * count of each array among them.
 */
export async function readKeyValues(file: string, prefix: string): Promise<{ entries: Array<{ key: string; raw: Buffer; count: number | null }> }> {
  const buf = await readFile(file);
  if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error(`${file} is not a GGUF file`);
  const version = buf.readUInt32LE(4);
  if (version !== 3 && version !== 2) throw new Error(`${file}: GGUF version ${version} is not supported`);
  const kvCount = Number(buf.readBigUInt64LE(16));
  let at = 24;
  const readString = () => {
    const len = Number(buf.readBigUInt64LE(at));
    const s = buf.toString('utf8', at + 8, at + 8 + len);
    at += 8 + len;
    return s;
  };
  const skipValue = (type: number): void => {
    if (type === GgufType.STRING) {
      readString();
    } else if (type === GgufType.ARRAY) {
      const inner = buf.readUInt32LE(at);
      const count = Number(buf.readBigUInt64LE(at + 4));
      at += 12;
      if (inner === GgufType.STRING || inner === GgufType.ARRAY) for (let i = 0; i < count; i++) skipValue(inner);
      else at += count * SCALAR_SIZE[inner]!;
    } else {
      const size = SCALAR_SIZE[type];
      if (size === undefined) throw new Error(`${file}: unknown GGUF value type ${type}`);
      at += size;
    }
  };
  const entries = [];
  for (let i = 0; i < kvCount; i++) {
    const start = at;
    const key = readString();
    const type = buf.readUInt32LE(at);
    at += 4;
    const count = type === GgufType.ARRAY ? Number(buf.readBigUInt64LE(at + 4)) : null;
    skipValue(type);
    if (key.startsWith(prefix)) entries.push({ key, raw: Buffer.from(buf.subarray(start, at)), count });
  }
  return { entries };
}
