// dup(2) through libc via koffi (as tcp-quickack.ts does setsockopt): MilterServer listens on duplicates of its
// socket so that more than one MTA connection is accepted per event-loop turn (see its `acceptsPerTurn`).
// Node has no API for it; where libc cannot be loaded, the server keeps its single handle.
import koffi from 'koffi';

/** Listening handles per milter socket when dup(2) is available. */
export const ACCEPTS_PER_TURN = 8;

// fcntl(fd, F_DUPFD_CLOEXEC, 0) rather than dup(fd): close-on-exec, like every descriptor Node opens, so a
// program started from this process never inherits the listening socket (and never keeps its port bound).
const F_DUPFD_CLOEXEC = 1030;

/** A close-on-exec duplicate of a descriptor, or the reason none can be made here. */
export function loadDuplicateDescriptor(): { dup: ((fd: number) => number) | undefined; reason: string | undefined } {
  if (process.platform !== 'linux') return { dup: undefined, reason: `only loaded on Linux (platform ${process.platform})` };
  try {
    const fcntl = koffi.load('libc.so.6').func('int fcntl(int fd, int cmd, ...)') as (fd: number, cmd: number, type: string, arg: number) => number;
    return { dup: (fd) => fcntl(fd, F_DUPFD_CLOEXEC, 'int', 0), reason: undefined };
  } catch (e) {
    return { dup: undefined, reason: `cannot load libc through koffi: ${(e as Error).message}` };
  }
}
