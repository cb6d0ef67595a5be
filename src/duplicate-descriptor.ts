// dup(2) through libc via koffi (as tcp-quickack.ts does setsockopt): MilterServer listens on duplicates of its
// socket so that more than one MTA connection is accepted per event-loop turn (see its `acceptsPerTurn`).
// Node has no API for it; where libc cannot be loaded, the server keeps its single handle.
import koffi from 'koffi';

/** Listening handles per milter socket when dup(2) is available. */
export const ACCEPTS_PER_TURN = 8;

/** dup(2), or the reason it is unavailable here. */
export function loadDuplicateDescriptor(): { dup: ((fd: number) => number) | undefined; reason: string | undefined } {
  if (process.platform !== 'linux') return { dup: undefined, reason: `only loaded on Linux (platform ${process.platform})` };
  try {
    const dup = koffi.load('libc.so.6').func('int dup(int fd)') as (fd: number) => number;
    return { dup, reason: undefined };
  } catch (e) {
    return { dup: undefined, reason: `cannot load libc through koffi: ${(e as Error).message}` };
  }
}
