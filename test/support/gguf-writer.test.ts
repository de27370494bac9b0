import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { readGgufFileInfo } from 'node-llama-cpp';
import { GgmlType, quantizeQ8_0, readKeyValues, toHalf, writeGguf } from './gguf-writer.ts';
import { tempDir } from './services.ts';

/** The tiny GGUF writer, read back by node-llama-cpp's own parser (the one that loads models). */
describe('GGUF writer (test support)', () => {
  it('writes key/values and tensor infos that node-llama-cpp reads back, and copies raw key/values exactly', async () => {
    const dir = await tempDir('ragmesh-gguf-');
    try {
      const file = path.join(dir.value, 'a.gguf');
      const rows = [[1, 2, 3], [4, 5, 6]];
      await writeGguf(
        file,
        [
          { key: 'general.architecture', type: 'string', value: 'llama' },
          { key: 'llama.block_count', type: 'u32', value: 2 },
          { key: 'llama.attention.layer_norm_rms_epsilon', type: 'f32', value: 0.5 },
        ],
        [
          { name: 'a.weight', shape: [2, 3], type: GgmlType.F32, fill: (v) => v.set(rows.flat()) },
          { name: 'b.weight', shape: [1, 32], type: GgmlType.Q8_0, fill: (v) => v.fill(0.25) },
        ],
      );
      const info = await readGgufFileInfo(file);
      const metadata = info.metadata as unknown as { general: { architecture: string }; llama: { block_count: number; attention: { layer_norm_rms_epsilon: number } } };
      assert.equal(metadata.general.architecture, 'llama');
      assert.equal(metadata.llama.block_count, 2);
      assert.equal(metadata.llama.attention.layer_norm_rms_epsilon, 0.5);
      const tensors = info.fullTensorInfo!.map((t) => ({ name: t.name, dims: t.dimensions.map(Number), type: t.ggmlType, offset: Number(t.offset) }));
      // Innermost dimension first; each tensor's data starts 32-byte aligned.
      assert.deepEqual(tensors, [
        { name: 'a.weight', dims: [3, 2], type: 0, offset: 0 },
        { name: 'b.weight', dims: [32, 1], type: 8, offset: 32 },
      ]);

      const copy = path.join(dir.value, 'b.gguf');
      const { entries } = await readKeyValues(file, 'llama.');
      assert.deepEqual(entries.map((e) => e.key), ['llama.block_count', 'llama.attention.layer_norm_rms_epsilon']);
      await writeGguf(copy, [{ key: 'general.architecture', type: 'string', value: 'llama' }, ...entries.map((e) => ({ key: e.key, raw: e.raw }))], []);
      assert.deepEqual((await readGgufFileInfo(copy)).metadata, info.metadata);
    } finally {
      await dir.dispose();
    }
  });

  it('quantizes to Q8_0 as ggml does: an f16 scale of max|x|/127 and 32 rounded bytes per block', () => {
    assert.equal(toHalf(1), 0x3c00);
    assert.equal(toHalf(0.5), 0x3800);
    assert.equal(toHalf(0), 0);
    assert.equal(toHalf(65504), 0x7bff);
    const values = Float32Array.from({ length: 32 }, (_, i) => (i - 16) / 16);
    const block = quantizeQ8_0(values);
    assert.equal(block.length, 34);
    assert.equal(block.readUInt16LE(0), toHalf(1 / 127));
    assert.equal(block.readInt8(2), -127);
    assert.equal(block.readInt8(2 + 16), 0);
    assert.equal(block.readInt8(2 + 24), Math.round(0.5 * 127));
  });
});
