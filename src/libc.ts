// libc functions Node has no API for (setsockopt TCP_QUICKACK, fcntl F_DUPFD_CLOEXEC), through koffi, a
// maintained FFI with prebuilt binaries. Linux only; elsewhere, or if libc cannot be loaded, the caller gets the
// reason and carries on without the function.
import koffi, { type LibraryHandle } from 'koffi';

let libc: LibraryHandle | undefined;

/** A libc function by its C signature, or why it is unavailable here. */
export function libcFunction<F>(signature: string): { fn: F; reason?: undefined } | { fn?: undefined; reason: string } {
  if (process.platform !== 'linux') return { reason: `only loaded on Linux (platform ${process.platform})` };
  try {
    libc ??= koffi.load('libc.so.6');
    return { fn: libc.func(signature) as F };
  } catch (e) {
    return { reason: `cannot load libc through koffi: ${(e as Error).message}` };
  }
}
