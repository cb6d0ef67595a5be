// Worker thread: lists one archive at a time with 7-Zip compiled to WebAssembly (7z-wasm), so that RAR, 7z,
// CAB and the other formats 7-Zip reads are listed by the reference decoders, in a memory-safe sandbox, off
// the event loop. Each listing gets a fresh 7-Zip instance (a few ms from the compiled module): the build lets
// C++ exceptions escape to JavaScript, after which an instance's state cannot be trusted, and a fresh one
// gives its memory back when it is dropped.
//
// Memory: 7-Zip's heap is WebAssembly memory, outside the worker's JavaScript heap limit, and the build lets it
// grow to 2 GB (an archive can ask for that: a 7z header claiming a gigabyte-sized packed header is allocated
// before it is read). The memory is the module's own (exported, not imported), so it cannot be made with a
// maximum of ours; instead each instance's `grow` refuses to go past MAX_HEAP_BYTES. 7-Zip then gets no
// memory, fails, and the archive is unreadable, like any archive 7-Zip cannot list.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parentPort } from 'node:worker_threads';
import sevenZipPackage, { type SevenZipModuleOptions } from '7z-wasm';
import { ARCHIVE, type SevenZipListing, type SevenZipRequest, parseListing } from './seven-zip-listing.js';

// Node's typings for version 20 do not declare WebAssembly; what is used here, opaquely typed.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmInstance {
  readonly exports: { readonly memory: WasmMemory };
}
declare const WebAssembly: {
  compile(bytes: Uint8Array): Promise<object>;
  instantiate(module: object, imports: object): Promise<WasmInstance>;
  Memory: { readonly prototype: WasmMemory };
};

/** emscripten's hook to instantiate from a module compiled once (not in 7z-wasm's typings). */
interface InstantiateHook {
  instantiateWasm(imports: SevenZipImports, ready: (instance: object, module: object) => void): object;
}

/** The imports emscripten hands the hook, as far as heap growth goes: false when the heap cannot grow. */
interface SevenZipImports {
  readonly env: { readonly emscripten_resize_heap: (bytes: number) => boolean | undefined };
}

// A CommonJS package: its factory is `module.exports`, also exported as `default`.
const createSevenZip = sevenZipPackage.default;

const wasmFile = createRequire(import.meta.url).resolve('7z-wasm/7zz.wasm');
const compiled = WebAssembly.compile(readFileSync(wasmFile));

// `-slt`: one `Key = value` line per property (see seven-zip-listing.ts); errors to the same output; a
// password given so that 7-Zip never prompts for one.
const LIST_ARGS = ['l', '-slt', '-ba', '-bsp0', '-bso1', '-bse1', '-pwrong-password', '-sccUTF-8'];

// Listing needs a few MB (a large archive's member table tens); decoders' dictionaries are not needed for names.
const MAX_HEAP_BYTES = 512 * 1024 * 1024;
const WASM_PAGE_BYTES = 65_536;

/** Makes `memory` refuse to grow past MAX_HEAP_BYTES. */
function capGrowth(memory: WasmMemory): void {
  const grow = WebAssembly.Memory.prototype.grow;
  // Emscripten's heap resizing calls `wasmMemory.grow` (trying smaller steps on a throw), so this holds for
  // every allocation 7-Zip makes.
  memory.grow = (pages: number): number => {
    if (memory.buffer.byteLength + pages * WASM_PAGE_BYTES > MAX_HEAP_BYTES) throw new RangeError(`7-Zip's memory would grow past ${MAX_HEAP_BYTES} bytes`);
    return grow.call(memory, pages);
  };
}

/** `imports` with a heap resizer that calls `refused` when the heap could not grow (an allocation failed). */
function watchHeapGrowth(imports: SevenZipImports, refused: () => void): SevenZipImports {
  const resize = imports.env.emscripten_resize_heap;
  const emscripten_resize_heap = (bytes: number): boolean | undefined => {
    const grown = resize(bytes);
    if (grown !== true) refused();
    return grown;
  };
  return { ...imports, env: { ...imports.env, emscripten_resize_heap } };
}

const OUT_OF_MEMORY = `listing needs more than ${MAX_HEAP_BYTES} bytes of memory`;

function unlisted(error: string): SevenZipListing {
  return { names: [], encrypted: false, expandedBytes: 0, complete: false, error };
}

async function list(request: SevenZipRequest): Promise<SevenZipListing> {
  const lines: string[] = [];
  // Output is kept for one member past the limit (that one says there were more), errors always: an archive
  // of a million members must not cost a million members' worth of lines.
  let members = 0;
  const keep = (line: string): void => {
    if (line.startsWith('Path = ')) members++;
    if (members <= request.maxMembers + 1 || line.startsWith('ERROR: ')) lines.push(line);
  };
  let outOfMemory = false;
  const module = await compiled;
  const options: Partial<SevenZipModuleOptions> & InstantiateHook = {
    print: keep,
    printErr: keep,
    instantiateWasm: (imports, ready) => {
      void WebAssembly.instantiate(module, watchHeapGrowth(imports, () => (outOfMemory = true))).then((instance) => {
        capGrowth(instance.exports.memory);
        ready(instance, module);
      });
      return {};
    },
  };
  const sevenZip = await createSevenZip(options);
  sevenZip.FS.mkdir('/in');
  // 7-Zip's file is the bytes moved here, not a copy of them (emscripten's `canOwn`, not in 7z-wasm's typings).
  const owned: { flags: string; canOwn: boolean } = { flags: 'w', canOwn: true };
  sevenZip.FS.writeFile(ARCHIVE, request.data, owned);
  let exitCode: number;
  try {
    exitCode = (sevenZip.callMain([...LIST_ARGS, ARCHIVE]) as unknown as number | undefined) ?? 0;
  } catch {
    // An escaped C++ exception: encrypted names (wrong password), data 7-Zip gave up on, or no memory.
    return unlisted(outOfMemory ? OUT_OF_MEMORY : 'cannot be read (damaged, or its names are encrypted)');
  }
  // 7-Zip may also catch the failed allocation itself and end with an error of its own.
  if (outOfMemory) return unlisted(OUT_OF_MEMORY);
  return parseListing(lines, exitCode, request.maxMembers, ARCHIVE);
}

parentPort?.on('message', (request: SevenZipRequest) => {
  list(request).then(
    (listing) => parentPort?.postMessage({ id: request.id, listing }),
    (e: unknown) => parentPort?.postMessage({ id: request.id, listing: unlisted(String(e)) }),
  );
});
