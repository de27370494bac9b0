import { Transporters } from 'moleculer';

/** The name moleculer.config.ts gives as the transporter's `type`. */
export const CORKED_AMQP = 'CorkedAMQP';

interface Corkable {
  cork(): void;
  uncork(): void;
}

/**
 * amqplib writes every frame it has queued as its own socket write, one per frame, on a
 * setImmediate pass of its muxer (amqplib/lib/mux.js). A message over 2 KB is two frames
 * (method and header, then body), and the llm's first answer is three messages (the
 * stream's opening, the ack of the request, the first token): so many write syscalls,
 * each of which wakes RabbitMQ, and on a busy 2-core machine the writer is often put off
 * the CPU for the woken reader between two of them (bench:sse traced gaps of 1–7 ms
 * between frames of one pass). Corking the socket for the pass sends what the pass has in
 * one write; nothing is held past the pass.
 *
 * This reaches into amqplib's Connection (`muxer`, `stream`): when they are not there
 * (another amqplib), nothing is changed and false is returned, so the frames go out as
 * before (the test of this module fails on such an upgrade).
 */
export function corkMuxerPasses(channelModel: unknown): boolean {
  const connection = (channelModel as { connection?: { muxer?: { _readIncoming?: () => void }; stream?: Partial<Corkable> } } | null)?.connection;
  const muxer = connection?.muxer;
  const socket = connection?.stream;
  const pass = muxer?._readIncoming;
  if (!muxer || typeof pass !== 'function' || typeof socket?.cork !== 'function' || typeof socket.uncork !== 'function') return false;
  const corkable = socket as Corkable;
  muxer._readIncoming = function (this: unknown) {
    corkable.cork();
    try {
      pass.call(this);
    } finally {
      corkable.uncork();
    }
  };
  return true;
}

const Amqp = Transporters.AMQP as unknown as new (opts?: unknown) => { connection: unknown; logger: { warn(...args: unknown[]): void } };

/**
 * Moleculer's AMQP transporter whose connection writes each muxer pass in one socket
 * write (see corkMuxerPasses). Set up as each connection is made (the first and every
 * reconnect), before anything is sent on it: Moleculer's connect() resolves only after
 * the node has announced itself, and on a reconnect calls flow before that.
 */
export class CorkedAmqpTransporter extends Amqp {
  constructor(opts?: unknown) {
    super(opts);
    let current: unknown = this.connection;
    Object.defineProperty(this, 'connection', {
      configurable: true,
      enumerable: true,
      get: () => current,
      set: (model: unknown) => {
        current = model;
        if (model && !corkMuxerPasses(model)) this.logger?.warn('amqplib internals changed: AMQP frames are written one by one');
      },
    });
  }
}

Transporters.register(CORKED_AMQP, CorkedAmqpTransporter as unknown as Parameters<typeof Transporters.register>[1]);
