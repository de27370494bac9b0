/**
 * Just enough of the ONNX protobuf encoding to write an inference graph. It exists so
 * tests can build a real BERT-architecture model in TypeScript with no Python, no
 * network and no protobuf dependency: the wire format of the handful of ONNX messages
 * a graph needs is small and stable (onnx.proto3 field numbers below).
 */

export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7 } as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** A protobuf message under construction: a list of encoded fields. */
class Message {
  private readonly parts: Buffer[] = [];

  private key(field: number, wireType: number): void {
    this.parts.push(varint(BigInt((field << 3) | wireType)));
  }

  int(field: number, value: number | bigint): this {
    this.key(field, 0);
    // Negative int64 values are 10-byte two's complement varints on the wire.
    this.parts.push(varint(BigInt.asUintN(64, BigInt(value))));
    return this;
  }

  float(field: number, value: number): this {
    this.key(field, 5);
    const b = Buffer.alloc(4);
    b.writeFloatLE(value);
    this.parts.push(b);
    return this;
  }

  bytes(field: number, value: Buffer | Uint8Array): this {
    this.key(field, 2);
    this.parts.push(varint(BigInt(value.length)), Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, Buffer.from(value, 'utf8'));
  }

  message(field: number, value: Message): this {
    return this.bytes(field, value.encode());
  }

  encode(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function varint(value: bigint): Buffer {
  const out: number[] = [];
  let v = value;
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return Buffer.from(out);
}

export type AttributeValue = number | number[] | string | { int: number } | { ints: number[] };

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, AttributeValue>;
  domain?: string;
}

export interface TensorSpec {
  name: string;
  type: DataTypeCode;
  dims: number[];
  data: Float32Array | Int8Array | Uint8Array | BigInt64Array | Int32Array;
}

export interface ValueSpec {
  name: string;
  type: DataTypeCode;
  /** A number is a fixed size, a string a symbolic one ("batch"). */
  shape: (number | string)[];
}

export interface GraphSpec {
  name: string;
  nodes: NodeSpec[];
  initializers: TensorSpec[];
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  opset: number;
  producer: string;
}

const AttrType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

function attribute(name: string, value: AttributeValue): Message {
  const m = new Message().string(1, name);
  // Plain numbers are floats; integer attributes are spelled { int } / { ints } so
  // that `epsilon: 1` and `axis: 1` cannot be confused.
  if (typeof value === 'number') return m.float(2, value).int(20, AttrType.FLOAT);
  if (typeof value === 'string') return m.string(4, value).int(20, AttrType.STRING);
  if (Array.isArray(value)) {
    for (const f of value) m.float(7, f);
    return m.int(20, AttrType.FLOATS);
  }
  if ('int' in value) return m.int(3, value.int).int(20, AttrType.INT);
  for (const i of value.ints) m.int(8, i);
  return m.int(20, AttrType.INTS);
}

function tensor(spec: TensorSpec): Message {
  const m = new Message();
  for (const d of spec.dims) m.int(1, d);
  m.int(2, spec.type).string(8, spec.name);
  return m.bytes(9, new Uint8Array(spec.data.buffer, spec.data.byteOffset, spec.data.byteLength));
}

function valueInfo(spec: ValueSpec): Message {
  const shape = new Message();
  for (const d of spec.shape) {
    shape.message(1, typeof d === 'number' ? new Message().int(1, d) : new Message().string(2, d));
  }
  const tensorType = new Message().int(1, spec.type).message(2, shape);
  return new Message().string(1, spec.name).message(2, new Message().message(1, tensorType));
}

/** Serialises a graph to the bytes of a `.onnx` file. */
export function encodeModel(spec: GraphSpec): Buffer {
  const graph = new Message();
  spec.nodes.forEach((n, i) => {
    const node = new Message();
    for (const input of n.inputs) node.string(1, input);
    for (const output of n.outputs) node.string(2, output);
    node.string(3, `${n.op}_${i}`).string(4, n.op);
    for (const [name, value] of Object.entries(n.attrs ?? {})) node.message(5, attribute(name, value));
    if (n.domain) node.string(7, n.domain);
    graph.message(1, node);
  });
  graph.string(2, spec.name);
  for (const init of spec.initializers) graph.message(5, tensor(init));
  for (const input of spec.inputs) graph.message(11, valueInfo(input));
  for (const output of spec.outputs) graph.message(12, valueInfo(output));

  const model = new Message()
    .int(1, 8) // IR version 8 goes with opset 17/18.
    .string(2, spec.producer)
    .message(7, graph)
    .message(8, new Message().string(1, '').int(2, spec.opset));
  return model.encode();
}
