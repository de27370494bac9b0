/**
 * V8 flags every ragmesh server process runs with: `npm start`, the image's CMD and the
 * test harness's processes pass exactly these (test/image-layout.test.ts checks the
 * first two against this list).
 *
 * Why: a server under steady load should hold a steady footprint, so that a growing
 * RSS means a leak and nothing else. With V8's defaults the young generation grows and
 * shrinks with the allocation rate (1 MiB to 16 MiB per semi-space) and the memory
 * reducer gives pages back whenever allocation slows, then takes them again: in the
 * 10-minute soak every process's RSS swung by 12–22 % while its used heap stayed within
 * a few MiB. A fixed 16 MiB semi-space (V8's own maximum on 64-bit) and no memory
 * reducer keep what a process has reached; the old generation still grows and is
 * collected as before.
 */
export const SERVER_NODE_FLAGS = ['--min-semi-space-size=16', '--max-semi-space-size=16', '--no-memory-reducer'] as const;
