// A close-on-exec duplicate of a descriptor: MilterServer listens on duplicates of its socket so that more than
// one MTA connection is accepted per event-loop turn (see its `acceptsPerTurn`). Node has no API for it; where
// libc cannot be reached, the server keeps its single handle.
import { libcFunction } from './libc.js';

/** Listening handles per milter socket when duplicates can be made. */
export const ACCEPTS_PER_TURN = 8;

// fcntl(fd, F_DUPFD_CLOEXEC, 0) rather than dup(fd): close-on-exec, like every descriptor Node opens, so a
// program started from this process never inherits the listening socket (and never keeps its port bound).
const F_DUPFD_CLOEXEC = 1030;

type Fcntl = (fd: number, cmd: number, type: string, arg: number) => number;

/** The duplicating function, or the reason it is unavailable here. */
export function loadDuplicateDescriptor(): { dup: ((fd: number) => number) | undefined; reason: string | undefined } {
  const { fn: fcntl, reason } = libcFunction<Fcntl>('int fcntl(int fd, int cmd, ...)');
  return fcntl ? { dup: (fd) => fcntl(fd, F_DUPFD_CLOEXEC, 'int', 0), reason: undefined } : { dup: undefined, reason };
}
