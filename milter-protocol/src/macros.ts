import { CommandCode } from './constants.js';
import type { MacroPair } from './messages.js';

// One map per stage, in protocol order. The content stages share a slot each as Postfix sends D(L)/D(N)
// with the end-of-header list and D(B)/D(E) with the end-of-data list; UNKNOWN gets a slot outside the order.
const SLOT_OF_STAGE: ReadonlyMap<number, number> = new Map([
  [CommandCode.CONNECT, 0],
  [CommandCode.HELO, 1],
  [CommandCode.MAIL, 2],
  [CommandCode.RCPT, 3],
  [CommandCode.DATA, 4],
  [CommandCode.HEADER, 5],
  [CommandCode.EOH, 5],
  [CommandCode.BODY, 6],
  [CommandCode.BODYEOB, 6],
  [CommandCode.UNKNOWN, 7],
]);
const ORDERED_SLOTS = 7;
/** The MAIL slot: it and the later ones belong to one message. */
const MESSAGE_FIRST_SLOT = 2;
/** Stages whose command starts a new scope: later stages' macros are stale from then on. */
const SCOPING_SLOTS = 4;

/**
 * Macros as libmilter scopes them: a new CONNECT, HELO, MAIL or RCPT clears the maps of all later stages;
 * a lookup searches the newest stage first. `x` and `{x}` name the same macro (MTAs spell one-letter macros
 * without braces, users often with them).
 */
export class MacroStore {
  private readonly slots: (Map<string, string> | undefined)[] = new Array<Map<string, string> | undefined>(ORDERED_SLOTS + 1);

  /** Stores a D packet's macros for the stage byte it names. Unknown stage bytes are kept nowhere. */
  define(stage: number, macros: readonly MacroPair[]): void {
    const slot = SLOT_OF_STAGE.get(stage);
    if (slot === undefined) return;
    if (slot < SCOPING_SLOTS) this.clearAfter(slot);
    const map = new Map<string, string>();
    for (const [name, value] of macros) map.set(bare(name), value);
    this.slots[slot] = map;
  }

  /** Called when a command arrives, so maps from an earlier message do not leak into this one. */
  enter(stage: number): void {
    const slot = SLOT_OF_STAGE.get(stage);
    if (slot !== undefined && slot < SCOPING_SLOTS) this.clearAfter(slot);
  }

  get(name: string): string | undefined {
    const key = bare(name);
    for (let i = ORDERED_SLOTS - 1; i >= 0; i--) {
      const v = this.slots[i]?.get(key);
      if (v !== undefined) return v;
    }
    return this.slots[ORDERED_SLOTS]?.get(key);
  }

  /** Every macro visible now, newest stage winning. */
  all(): Map<string, string> {
    const out = new Map<string, string>();
    for (const slot of [ORDERED_SLOTS, ...Array.from({ length: ORDERED_SLOTS }, (_, i) => i)]) {
      for (const [k, v] of this.slots[slot] ?? []) out.set(k.length === 1 ? k : `{${k}}`, v);
    }
    return out;
  }

  /** A message ended (EOM answered, or ABORT): its MAIL…EOM maps must not leak into the next message. */
  endMessage(): void {
    for (let i = MESSAGE_FIRST_SLOT; i < ORDERED_SLOTS; i++) this.slots[i] = undefined;
  }

  clear(): void {
    this.slots.fill(undefined);
  }

  private clearAfter(slot: number): void {
    for (let i = slot + 1; i < ORDERED_SLOTS; i++) this.slots[i] = undefined;
  }
}

function bare(name: string): string {
  return name.length > 2 && name.startsWith('{') && name.endsWith('}') ? name.slice(1, -1) : name;
}
