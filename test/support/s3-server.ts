import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
// s3rver has no type declarations.
// @ts-expect-error untyped module
import S3rver from 's3rver';
import type { S3Config } from '../../lib/config/env.ts';

/**
 * An S3-compatible server on 127.0.0.1, started by the tests because no MinIO can
 * run here. Known gaps against MinIO: s3rver does not verify request signatures
 * (a wrong secret key is not caught) and has no multipart upload.
 */
export interface TestS3Server {
  config: S3Config;
  endpoint: string;
  stop(): Promise<void>;
  /** Stops serving (connections refused) but keeps the data, for outage tests. */
  halt(): Promise<void>;
  /** Serves again on the same port with the same data. */
  resume(): Promise<void>;
}

export async function startS3Server(): Promise<TestS3Server> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ragmesh-s3-'));
  let server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir });
  let running = true;
  const address = (await server.run()) as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    config: {
      endPoint: '127.0.0.1',
      port: address.port,
      useSSL: false,
      accessKey: 'S3RVER',
      secretKey: 'S3RVER',
      region: 'us-east-1',
    },
    async stop() {
      if (running) await server.close();
      running = false;
      await rm(dir, { recursive: true, force: true });
    },
    async halt() {
      if (running) await server.close();
      running = false;
    },
    async resume() {
      if (running) return;
      server = new S3rver({ address: '127.0.0.1', port: address.port, silent: true, directory: dir });
      await server.run();
      running = true;
    },
  };
}
