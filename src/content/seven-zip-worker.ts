// Worker thread: lists one archive at a time with 7-Zip compiled to WebAssembly (7z-wasm), so that RAR, 7z,
// CAB and the other formats 7-Zip reads are listed by the reference decoders, in a memory-safe sandbox, off
// the event loop. Each listing gets a fresh 7-Zip instance (a few ms from the compiled module): the build lets
// C++ exceptions escape to JavaScript, after which an instance's state cannot be trusted, and a fresh one
// gives its memory back when it is dropped.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parentPort } from 'node:worker_threads';
import sevenZipPackage, { type SevenZipModuleOptions } from '7z-wasm';
import { ARCHIVE, type SevenZipListing, type SevenZipRequest, parseListing } from './seven-zip-listing.js';

// Node's typings for version 20 do not declare WebAssembly; the two calls used here, opaquely typed.
declare const WebAssembly: {
  compile(bytes: Uint8Array): Promise<object>;
  instantiate(module: object, imports: object): Promise<object>;
};

/** emscripten's hook to instantiate from a module compiled once (not in 7z-wasm's typings). */
interface InstantiateHook {
  instantiateWasm(imports: object, ready: (instance: object, module: object) => void): object;
}

// A CommonJS package: its factory is `module.exports`, also exported as `default`.
const createSevenZip = sevenZipPackage.default;

const wasmFile = createRequire(import.meta.url).resolve('7z-wasm/7zz.wasm');
const compiled = WebAssembly.compile(readFileSync(wasmFile));

// `-slt`: one `Key = value` line per property (see seven-zip-listing.ts); errors to the same output; a
// password given so that 7-Zip never prompts for one.
const LIST_ARGS = ['l', '-slt', '-ba', '-bsp0', '-bso1', '-bse1', '-pwrong-password', '-sccUTF-8'];

async function list(request: SevenZipRequest): Promise<SevenZipListing> {
  const lines: string[] = [];
  // Output is kept for one member past the limit (that one says there were more), errors always: an archive
  // of a million members must not cost a million members' worth of lines.
  let members = 0;
  const keep = (line: string): void => {
    if (line.startsWith('Path = ')) members++;
    if (members <= request.maxMembers + 1 || line.startsWith('ERROR: ')) lines.push(line);
  };
  const module = await compiled;
  const options: Partial<SevenZipModuleOptions> & InstantiateHook = {
    print: keep,
    printErr: keep,
    instantiateWasm: (imports, ready) => {
      void WebAssembly.instantiate(module, imports).then((instance) => ready(instance, module));
      return {};
    },
  };
  const sevenZip = await createSevenZip(options);
  sevenZip.FS.mkdir('/in');
  sevenZip.FS.writeFile(ARCHIVE, request.data);
  let exitCode: number;
  try {
    exitCode = (sevenZip.callMain([...LIST_ARGS, ARCHIVE]) as unknown as number | undefined) ?? 0;
  } catch {
    // An escaped C++ exception: encrypted names (wrong password), or data 7-Zip gave up on.
    return { names: [], encrypted: false, expandedBytes: 0, complete: false, error: 'cannot be read (damaged, or its names are encrypted)' };
  }
  return parseListing(lines, exitCode, request.maxMembers, ARCHIVE);
}

parentPort?.on('message', (request: SevenZipRequest) => {
  list(request).then(
    (listing) => parentPort?.postMessage({ id: request.id, listing }),
    (e: unknown) => parentPort?.postMessage({ id: request.id, listing: { names: [], encrypted: false, expandedBytes: 0, complete: false, error: String(e) } }),
  );
});
