// Archives made by 7-Zip itself (the 7z-wasm build the lister uses) for tests: 7z with or without a password
// (and with encrypted names), and tar.
import sevenZipPackage from '7z-wasm';

export interface ArchiveMember {
  readonly name: string;
  readonly data: Buffer | string;
}

export async function makeWithSevenZip(
  format: '7z' | 'tar',
  members: readonly ArchiveMember[],
  options: { password?: string; encryptNames?: boolean } = {},
): Promise<Buffer> {
  const sevenZip = await sevenZipPackage.default({ print: () => undefined, printErr: () => undefined });
  sevenZip.FS.mkdir('/src');
  const names: string[] = [];
  for (const m of members) {
    const parts = m.name.split('/');
    for (let d = 1; d < parts.length; d++) {
      try {
        sevenZip.FS.mkdir(`/src/${parts.slice(0, d).join('/')}`);
      } catch {
        // made for an earlier member
      }
    }
    sevenZip.FS.writeFile(`/src/${m.name}`, Buffer.from(m.data));
    names.push(m.name);
  }
  sevenZip.FS.chdir('/src');
  const args = ['a', `-t${format}`, '-bso0', '-bsp0', `/out.${format}`, ...names];
  if (options.password !== undefined) args.push(`-p${options.password}`);
  if (options.encryptNames) args.push('-mhe=on');
  sevenZip.callMain(args);
  return Buffer.from(sevenZip.FS.readFile(`/out.${format}`));
}
