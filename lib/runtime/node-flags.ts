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
 * reducer keep what a process has reached. Without the reducer the old generation then
 * filled up with garbage toward V8's own limit (up to 4× the live heap), and the api's
 * RSS rose 13 % over ten minutes while its live heap (after a forced full collection,
 * SOAK_GC_PROBE=1) grew by 2.7 MiB; a fixed growth factor of 1.25 starts a major
 * collection when the old generation holds a quarter more than survived the last one.
 * On these heaps (about 50 MiB live) that costs a concurrent marking every few minutes.
 *
 * `--experimental-async-context-frame` (Node 22.7+, the default from Node 24): the request
 * context of the logs (lib/logging.ts, an AsyncLocalStorage entered around every action)
 * is carried by V8's continuation data instead of async_hooks, whose promise hooks ran on
 * every promise a process makes: an await in an AsyncLocalStorage context cost 0.21 µs
 * with them and 0.06 µs without, and the api and llm processes of bench:sse spent 2–4 %
 * of their CPU in those hooks (docs/sse.md).
 */
export const SERVER_NODE_FLAGS = ['--min-semi-space-size=16', '--max-semi-space-size=16', '--no-memory-reducer', '--heap-growing-percent=25', '--experimental-async-context-frame'] as const;
