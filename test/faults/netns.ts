import { execFile } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ip = (...args: string[]) => run('ip', args);

/**
 * Hosts as Linux network namespaces, joined to this (root) namespace by veth links
 * addressed in the loopback range only (127.B.L.1 here, 127.B.L.2 in the host), so
 * nothing is ever routed off the machine. Each link carries its own services: cutting
 * one (its root end set down, so packets are dropped silently, as in a real
 * partition) leaves the others up. The machine's servers listen on 127.0.0.1 only,
 * so a small TCP forwarder on each link's root address passes connections through.
 */
export class NetnsLab {
  private readonly namespaces: string[] = [];
  private readonly links: string[] = [];
  private readonly forwarders: Server[] = [];
  private readonly sockets = new Set<Socket>();
  private nextLink = 1;

  constructor(readonly base = 100 + (process.pid % 100)) {}

  static async available(): Promise<string | null> {
    if (process.getuid?.() !== 0) return 'needs root';
    return ip('-V').then(() => null, () => 'needs `ip` (iproute2)');
  }

  /** A namespace with lo up; its name is unique to this process. */
  async host(name: string): Promise<string> {
    const ns = `rmf-${name}-${process.pid}`;
    await ip('netns', 'add', ns);
    this.namespaces.push(ns);
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    return ns;
  }

  /**
   * A veth link between `ns` and the root namespace; `forward` lists ports that, on the
   * root address, lead to the same port (or a `to` port) on 127.0.0.1. Returns both
   * addresses and the root-side interface (to cut the link).
   */
  async link(ns: string, forward: Array<number | { port: number; to: number }>): Promise<{ rootAddress: string; hostAddress: string; rootIf: string }> {
    const n = this.nextLink++;
    const rootIf = `rmf${process.pid % 100000}r${n}`.slice(0, 15);
    const hostIf = `rmf${process.pid % 100000}h${n}`.slice(0, 15);
    const rootAddress = `127.${this.base}.${n}.1`;
    const hostAddress = `127.${this.base}.${n}.2`;
    await ip('link', 'add', rootIf, 'type', 'veth', 'peer', 'name', hostIf);
    this.links.push(rootIf);
    await ip('link', 'set', hostIf, 'netns', ns);
    await ip('addr', 'add', `${rootAddress}/30`, 'dev', rootIf);
    await ip('-n', ns, 'addr', 'add', `${hostAddress}/30`, 'dev', hostIf);
    // Loopback-range addresses are "martian" on a real interface unless route_localnet is set on it.
    await run('sysctl', ['-qw', `net.ipv4.conf.${rootIf}.route_localnet=1`]);
    await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv4.conf.${hostIf}.route_localnet=1`]);
    await ip('link', 'set', rootIf, 'up');
    await ip('-n', ns, 'link', 'set', hostIf, 'up');
    for (const f of forward) {
      const { port, to } = typeof f === 'number' ? { port: f, to: f } : f;
      await this.forwarder(rootAddress, port, to);
    }
    return { rootAddress, hostAddress, rootIf };
  }

  async cut(rootIf: string): Promise<void> {
    await ip('link', 'set', rootIf, 'down');
  }

  async heal(rootIf: string): Promise<void> {
    await ip('link', 'set', rootIf, 'up');
  }

  /** `ip netns exec NS`: the prefix that starts a process inside the host. */
  exec(ns: string): string[] {
    return ['ip', 'netns', 'exec', ns];
  }

  async dispose(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.forwarders.map((f) => new Promise((r) => f.close(r))));
    for (const l of this.links) await ip('link', 'del', l).catch(() => undefined);
    for (const ns of this.namespaces) await ip('netns', 'del', ns).catch(() => undefined);
  }

  private async forwarder(address: string, port: number, to: number): Promise<void> {
    const server = createServer((inbound) => {
      const outbound = connect(to, '127.0.0.1');
      for (const s of [inbound, outbound]) {
        this.sockets.add(s);
        s.once('close', () => this.sockets.delete(s));
        s.on('error', () => {
          inbound.destroy();
          outbound.destroy();
        });
      }
      inbound.pipe(outbound);
      outbound.pipe(inbound);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, address, () => resolve());
    });
    this.forwarders.push(server);
  }
}
