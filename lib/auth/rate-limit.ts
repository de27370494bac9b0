import { appError } from '../errors.ts';
import type { KeyValueStore, WindowVerdict } from '../ports/key-value.ts';
import type { Principal } from './jwt.ts';
import { permissionOf, RATE_CLASSES, requirePermission, type Action, type RateClass } from './permissions.ts';

export interface RateLimitSettings {
  windowMs: number;
  /** Requests one user may make per window, per class; 0 = unlimited. */
  perUser: Record<RateClass, number>;
  /** Requests all users of one tenant may make together per window, per class; 0 = unlimited. */
  perTenant: Record<RateClass, number>;
}

export const DEFAULT_RATE_LIMITS: Omit<RateLimitSettings, 'windowMs'> = {
  perUser: { read: 1200, search: 600, chat: 60, upload: 300, admin: 120, openai: 300 },
  perTenant: { read: 12000, search: 3000, chat: 300, upload: 1500, admin: 600, openai: 1500 },
};

/**
 * Parses `search=120,chat=30` over the defaults; unknown classes and non-integers are
 * problems for the config reader to report.
 */
export function parseRateLimits(spec: string, defaults: Record<RateClass, number>): { limits: Record<RateClass, number>; problems: string[] } {
  const limits = { ...defaults };
  const problems: string[] = [];
  for (const part of spec.split(',').map((p) => p.trim()).filter(Boolean)) {
    const match = /^([a-z]+)=(\d+)$/.exec(part);
    if (!match || !(RATE_CLASSES as readonly string[]).includes(match[1]!)) {
      problems.push(`"${part}" is not <class>=<requests> with a class of ${RATE_CLASSES.join(', ')}`);
      continue;
    }
    limits[match[1] as RateClass] = Number(match[2]);
  }
  return { limits, problems };
}

/** The windows one caller's request of one class counts in: KV keys and their limits. */
interface Windows {
  rateClass: RateClass;
  keys: string[];
  limits: number[];
}

/**
 * Per-user and per-tenant request limits per class of route, as one sliding window in
 * the KV store (an atomic script in Redis, so every api replica shares the count).
 * A refusal is 429 RATE_LIMITED with Retry-After.
 */
export class RateLimiter {
  /**
   * The windows of a caller, per class, made once per principal object: the credential
   * cache hands the same frozen principal to every request of a credential, so the hot
   * path builds no key strings (each new string would also be hashed again by the KV).
   */
  private readonly planned = new WeakMap<object, Partial<Record<RateClass, Windows>>>();
  /** The windows of each action a frozen principal was admitted to (see check): present = permitted. */
  private readonly admitted = new WeakMap<object, Partial<Record<Action, Windows>>>();

  constructor(
    private readonly kv: KeyValueStore,
    private readonly settings: RateLimitSettings,
  ) {}

  /** The gateway's check of every authenticated request: the permission table, then the action's rate class. */
  async admit(principal: Principal | undefined | null, action: Action): Promise<Principal> {
    const caller = requirePermission(principal, action);
    const pending = this.count(caller, permissionOf(action).rate);
    if (pending) await pending;
    return caller;
  }

  /**
   * admit() for the gateway's hot path: throws at once when the permission table or a
   * window already in this process (the memory store) refuses, and returns a promise
   * only when the count needs a round trip (Redis). Through HTTP each async layer of
   * admit → hit → hitWindows cost about a microsecond (bench:auth). `now` (epoch ms) is the
   * caller's clock read for the request, when it has one: the memory store counts the hit
   * at that time instead of reading the clock again; Redis keeps its own clock.
   */
  check(principal: Principal | undefined | null, action: Action, now?: number): Promise<void> | undefined {
    // The verdict of the permission table for a frozen principal (roles frozen too, as the
    // credential cache hands them out) cannot change, the table being code: looked up once
    // per principal and action, with its windows.
    // Timed in place the table's check was the dearest part (~0.6 µs of ~1.3).
    let windows = principal ? this.admitted.get(principal)?.[action] : undefined;
    if (windows === undefined) {
      const caller = requirePermission(principal, action);
      const rateClass = permissionOf(action).rate;
      windows = this.windowsOf(caller, rateClass);
      if (Object.isFrozen(caller) && Object.isFrozen(caller.roles)) {
        let byAction = this.admitted.get(caller);
        if (!byAction) this.admitted.set(caller, (byAction = {}));
        byAction[action] = windows;
      }
    }
    return this.countIn(windows, now);
  }

  async hit(who: { tenantId: string; userId: string }, rateClass: RateClass): Promise<void> {
    const pending = this.count(who, rateClass);
    if (pending) await pending;
  }

  private count(who: { tenantId: string; userId: string }, rateClass: RateClass): Promise<void> | undefined {
    return this.countIn(this.windowsOf(who, rateClass));
  }

  private countIn(windows: Windows, now?: number): Promise<void> | undefined {
    if (windows.keys.length === 0) return undefined;
    if (this.kv.hitWindowsNow) {
      this.enforce(this.kv.hitWindowsNow(windows.keys, windows.limits, this.settings.windowMs, now), windows.rateClass);
      return undefined;
    }
    return this.kv.hitWindows(windows.keys, windows.limits, this.settings.windowMs).then((verdict) => this.enforce(verdict, windows.rateClass));
  }

  private enforce(verdict: WindowVerdict, rateClass: RateClass): void {
    if (!verdict.allowed) {
      const seconds = Math.max(1, Math.ceil(verdict.retryAfterMs / 1000));
      throw appError('RATE_LIMITED', `Too many ${rateClass} requests; retry in ${seconds} s`, { retryAfterSeconds: seconds });
    }
  }

  private windowsOf(who: { tenantId: string; userId: string }, rateClass: RateClass): Windows {
    let byClass = this.planned.get(who);
    const known = byClass?.[rateClass];
    if (known) return known;
    const keys: string[] = [];
    const limits: number[] = [];
    const user = this.settings.perUser[rateClass];
    const tenant = this.settings.perTenant[rateClass];
    if (user > 0) {
      keys.push(`rl:${rateClass}:u:${who.tenantId}:${who.userId}`);
      limits.push(user);
    }
    if (tenant > 0) {
      keys.push(`rl:${rateClass}:t:${who.tenantId}`);
      limits.push(tenant);
    }
    const windows = { rateClass, keys, limits };
    // Only a frozen caller is remembered: its ids cannot change under the cached keys.
    if (Object.isFrozen(who)) {
      if (!byClass) this.planned.set(who, (byClass = {}));
      byClass[rateClass] = windows;
    }
    return windows;
  }
}
