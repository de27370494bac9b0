import type { Role } from '../../lib/auth/jwt.ts';
import { AccessTokens, tokenSettings } from '../../lib/auth/tokens.ts';
import { loadConfig } from '../../lib/config/env.ts';
import { createLogger } from '../../lib/logging.ts';
import { bootNode, type RunningNode } from '../../boot.ts';
import { tempDir } from './services.ts';

export interface EmbeddedNode {
  node: RunningNode;
  /** http://127.0.0.1:<port> of its api. */
  base: string;
  /** An EdDSA token of the node's signing keyset (what `npm run token` prints). */
  token(roles: Role[], userId?: string, tenantId?: string): Promise<string>;
  tokens: AccessTokens;
  stop(): Promise<void>;
}

/** The embedded profile in this process, all six services, data in a fresh temp dir, the api on a free port. */
export async function startEmbeddedNode(extraEnv: Record<string, string> = {}): Promise<EmbeddedNode> {
  const dir = await tempDir();
  const env = { DATA_DIR: dir.value, PORT: '0', LOG_LEVEL: 'warn', ...extraEnv };
  const node = await bootNode(loadConfig(env), createLogger('warn'));
  const tokens = await AccessTokens.open(tokenSettings(node.runtime.config, node.runtime.jwtSecret));
  return {
    node,
    base: `http://127.0.0.1:${node.httpPort}`,
    tokens,
    token: (roles, userId = 'alice', tenantId = 'acme') => tokens.sign({ tenantId, userId, roles }, 600),
    async stop() {
      await node.stop();
      await dir.dispose();
    },
  };
}
