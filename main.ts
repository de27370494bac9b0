import { loadConfig, type Config } from './lib/config/env.ts';
import { ConfigError } from './lib/errors.ts';
import { createLogger } from './lib/logging.ts';
import { SERVER_NODE_FLAGS } from './lib/runtime/node-flags.ts';
import { bootNode } from './boot.ts';

/**
 * One ragmesh process: validate the environment, then boot the services named by
 * SERVICES. `npm start` with no variables = the embedded profile, all six services.
 */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`ragmesh: ${err.message}\nSee docs/config.md for every variable.\n`);
    process.exit(2);
  }

  const logger = createLogger(config.logLevel, { mod: 'boot' });
  logger.info(
    { profile: config.profile, services: config.services, transporter: config.transporter ? 'amqp' : 'none', dataDir: config.dataDir },
    'ragmesh starting',
  );
  // Started some other way than `npm start` or the image (plain `node main.ts`): it runs,
  // but its memory follows V8's defaults, which the soak and the dashboards do not assume.
  const missingFlags = SERVER_NODE_FLAGS.filter((flag) => !process.execArgv.includes(flag));
  if (missingFlags.length > 0) logger.warn({ missingFlags }, 'node started without the server flags of lib/runtime/node-flags.ts; RSS will swing with V8 defaults');
  const node = await bootNode(config, logger);
  logger.info(
    { nodeId: node.broker.nodeID, url: node.httpPort ? `http://${config.http.host}:${node.httpPort}` : undefined },
    'ragmesh ready',
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'ragmesh stopping');
    setTimeout(() => process.exit(1), 15_000).unref();
    await node.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err) => {
  process.stderr.write(`ragmesh: failed to start: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
