import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAGIC_HEAD_BYTES, MARKUP_TAIL_BYTES, type RealType, detectType, typeContradiction } from 'postfix-milter-ts/content/magic.js';
import { SAMPLES, makeZip } from './zip-writer.js';

const bytes = (...parts: (string | number[])[]): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
const at = (offset: number, sig: string, size = offset + 64): Buffer => {
  const b = Buffer.alloc(size);
  b.write(sig, offset, 'latin1');
  return b;
};

describe('detectType', () => {
  const cases: [label: string, head: Buffer, want: RealType, tail?: Buffer][] = [
    ['PE executable', SAMPLES.pe(), 'pe'],
    ['text that starts with MZ', Buffer.from('MZ Holdings quarterly letter, plain text of some length to pass 64 bytes.'), 'text'],
    ['ELF', bytes([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), 'elf'],
    ['Mach-O 64 LE', bytes([0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1]), 'macho'],
    ['Mach-O 32 BE', bytes([0xfe, 0xed, 0xfa, 0xce]), 'macho'],
    ['Mach-O universal', bytes([0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2]), 'macho'],
    ['Java class', bytes([0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 52]), 'java-class'],
    ['shebang script', Buffer.from('#!/bin/sh\necho hi\n'), 'shebang'],
    ['Windows shortcut', SAMPLES.lnk(), 'lnk'],
    ['CHM', bytes('ITSF', [3, 0, 0, 0]), 'chm'],
    ['registry file', Buffer.from('Windows Registry Editor Version 5.00\r\n'), 'reg'],
    ['ISO 9660', SAMPLES.iso(), 'iso'],
    ['UDF', at(0x8001, 'BEA01'), 'iso'],
    ['VHDX', bytes('vhdxfile'), 'vhdx'],
    ['VHD dynamic', bytes('conectix'), 'vhd'],
    ['VHD fixed (footer)', Buffer.alloc(1024, 0x41).fill(0, 0, 16), 'vhd', at(0, 'conectix', 512)],
    ['DMG (koly trailer)', bytes([0x78, 0xda, 1, 2, 3]), 'dmg', at(0, 'koly', 512)],
    ['WIM', bytes('MSWIM\0\0\0'), 'wim'],
    ['zip', makeZip([{ name: 'a.txt', data: 'x' }]), 'zip'],
    ['docx is a zip', SAMPLES.ooxml('word'), 'zip'],
    ['rar', bytes('Rar!\x1a\x07\x01\x00'), 'rar'],
    ['7z', bytes([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]), '7z'],
    ['gzip', bytes([0x1f, 0x8b, 8, 0]), 'gzip'],
    ['cab', bytes('MSCF\0\0\0\0'), 'cab'],
    ['ace', at(7, '**ACE**'), 'ace'],
    ['tar', at(257, 'ustar'), 'tar'],
    ['TNEF (winmail.dat)', bytes([0x78, 0x9f, 0x3e, 0x22, 0x01, 0x00]), 'tnef'],
    ['OLE (doc/xls/msi)', bytes([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]), 'ole'],
    ['PDF', SAMPLES.pdf(), 'pdf'],
    ['PDF after junk', Buffer.concat([Buffer.from('garbage line\n'), SAMPLES.pdf()]), 'pdf'],
    ['PNG', SAMPLES.png(), 'png'],
    ['JPEG', SAMPLES.jpeg(), 'jpeg'],
    ['GIF', bytes('GIF89a'), 'gif'],
    ['RTF', bytes('{\\rtf1\\ansi'), 'rtf'],
    ['calendar', Buffer.from('BEGIN:VCALENDAR\r\nVERSION:2.0\r\n'), 'calendar'],
    ['HTML', Buffer.from('<!DOCTYPE html><html><body>hi</body></html>'), 'html'],
    ['HTA', Buffer.from('<html><head><HTA:APPLICATION ID="x"></head></html>'), 'hta'],
    ['HTML smuggling', Buffer.from('<html><script>var b = new Blob([atob("TVo=")]); a.download = "x.iso";</script></html>'), 'html-smuggling'],
    ['HTML with harmless script', Buffer.from('<html><script>document.title = "x"</script></html>'), 'html'],
    ['HTML smuggling by msSaveOrOpenBlob', Buffer.from('<html><script>navigator.msSaveOrOpenBlob(b, "x.exe")</script></html>'), 'html-smuggling'],
    ['HTML smuggling by object URL and download', Buffer.from('<html><script>a.href = URL.createObjectURL(b); a.download = "x.exe"; a.click()</script></html>'), 'html-smuggling'],
    ['a saved web page that decodes base64 (no download)', Buffer.from('<html><script>var cfg = JSON.parse(atob("e30=")); new Blob([x]);</script></html>'), 'html'],
    ['SVG', Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>'), 'svg'],
    ['SVG with script', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>'), 'svg-script'],
    ['plain text', Buffer.from('hello world\r\n'), 'text'],
    ['UTF-8 BOM text', Buffer.from('\ufeffhello', 'utf8'), 'text'],
    ['random binary', Buffer.from([0x00, 0x13, 0x99, 0x00, 0x42]), 'unknown'],
    ['empty', Buffer.alloc(0), 'text'],
  ];
  for (const [label, head, want, tail] of cases) {
    test(`${label} → ${want}`, () => assert.equal(detectType(head, tail), want));
  }
});

describe('typeContradiction', () => {
  const cases: [detected: RealType, ext: string, mime: string, want: 'extension' | 'declared-type' | undefined][] = [
    ['pe', 'pdf', 'application/pdf', 'extension'],
    ['pe', '', 'text/plain', 'declared-type'],
    ['pe', 'dat', 'application/octet-stream', undefined], // no claim: dangerous-content covers it
    ['shebang', 'txt', 'text/plain', undefined], // a script is text
    ['zip', 'pdf', 'application/pdf', 'extension'],
    ['zip', 'docx', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', undefined],
    ['zip', 'xlsx', 'application/vnd.ms-excel', undefined],
    ['zip', 'jar', 'application/java-archive', undefined],
    ['ole', 'doc', 'application/msword', undefined],
    ['rtf', 'doc', 'application/msword', undefined], // Word saves RTF as .doc: not risky by itself
    ['jpeg', 'png', 'image/png', undefined], // benign image mix-ups are not contradictions
    ['pdf', 'pdf', 'application/octet-stream', undefined],
    ['text', 'pdf', 'application/pdf', undefined],
    ['html', 'txt', 'text/plain', undefined],
    ['html', 'pdf', 'application/pdf', 'extension'],
    ['calendar', 'ics', 'text/calendar', undefined],
  ];
  for (const [detected, ext, mime, want] of cases) {
    test(`${detected} as .${ext} (${mime}) → ${want ?? 'none'}`, () => assert.equal(typeContradiction(detected, ext, mime), want));
  }
});

describe('detectType: HTML smuggling needs a file built in script and a way to hand it over', () => {
  const page = (html: string): Buffer => Buffer.from(html, 'latin1');
  const build = 'var b = new Blob([atob("TVqQAAMAAAAEAAAA")], {type: "application/octet-stream"});';
  const cases: [label: string, head: Buffer, want: RealType][] = [
    // 1: the download attribute in the markup, the object URL from script
    ['<a download="invoice.iso"> given an object URL and clicked', page(`<html><body><a id="dl" download="invoice.iso" style="display:none">x</a><script>${build} var a = document.getElementById("dl"); a.href = URL.createObjectURL(b); a.click();</script></body></html>`), 'html-smuggling'],
    ['<a download> without a value given an object URL', page(`<html><body><a id="dl" download hidden></a><script>${build} dl.href = URL.createObjectURL(b); dl.click();</script></body></html>`), 'html-smuggling'],
    // 2: setAttribute
    ['setAttribute("download", name) next to a Blob', page(`<html><script>${build} var a = document.createElement("a"); a.href = URL.createObjectURL(b); a.setAttribute("download", name); a.click();</script></html>`), 'html-smuggling'],
    ["setAttribute('download', …) next to atob", page(`<html><script>var d = atob(p); var a = document.createElement('a'); a.href = 'data:application/octet-stream;base64,' + p; a.setAttribute('download', 'invoice.iso'); a.click();</script></html>`), 'html-smuggling'],
    // 3: navigation to an object URL
    ['location.href = URL.createObjectURL(blob)', page(`<html><script>${build} location.href = URL.createObjectURL(b);</script></html>`), 'html-smuggling'],
    ['window.location = URL.createObjectURL(…)', page('<html><script>window.location = URL.createObjectURL(new Blob([atob(p)]));</script></html>'), 'html-smuggling'],
    ['window.open(URL.createObjectURL(…))', page(`<html><script>${build} window.open(URL.createObjectURL(b));</script></html>`), 'html-smuggling'],
    ['location.assign(u) of a variable holding an object URL', page(`<html><script>${build} const u = URL.createObjectURL(b); setTimeout(function () { location.assign(u); }, 100);</script></html>`), 'html-smuggling'],
    // 4: msSaveBlob (msSaveOrOpenBlob is in the table above)
    ['navigator.msSaveBlob', page(`<html><script>${build} navigator.msSaveBlob(b, "invoice.iso");</script></html>`), 'html-smuggling'],
    // 5: obfuscated property access
    ['newlines around . and = in a.download', page(`<html><script>${build}\nvar a = document.createElement("a");\na\n  .\n  download\n  =\n  "invoice.iso";\na.href = URL.createObjectURL(b);\na.click();</script></html>`), 'html-smuggling'],
    ['a["download"] = …', page(`<html><script>${build} var a = document.createElement("a"); a["href"] = URL.createObjectURL(b); a["download"] = "invoice.iso"; a["click"]();</script></html>`), 'html-smuggling'],
    ["window['location']['href'] = URL['createObjectURL'](b)", page(`<html><script>${build} window['location']['href'] = URL['createObjectURL'](b);</script></html>`), 'html-smuggling'],
    ['newlines around = in location.href', page(`<html><script>${build}\nlocation.href\n=\nURL.createObjectURL(b);</script></html>`), 'html-smuggling'],

    ['a saved web page with atob in a library, no Blob or download', page('<!DOCTYPE html><html><head><script>/*! jwt-decode */function decode(t){return JSON.parse(atob(t.split(".")[1]))}if(!decode(tok).sub){window.location.href="/login"}document.querySelector("a.more").onclick=function(){window.open("/help")};</script></head><body><a title="free download" href="/app">App</a></body></html>'), 'html'],
    ['an ordinary <a download href="report.pdf"> and script building no Blob', page('<!DOCTYPE html><html><head><script>window.dataLayer = window.dataLayer || []; var id = atob("VUEtMTIz"); gtag("config", id);</script></head><body><a download href="report.pdf">Annual report</a></body></html>'), 'html'],
    ['documentation showing smuggling code as escaped text', page(`<!DOCTYPE html><html><head><script src="highlight.min.js"></script><script>hljs.highlightAll();</script></head><body><p>How HTML smuggling works:</p><pre><code>&lt;a id="dl" download="invoice.iso"&gt;&lt;/a&gt;\n&lt;script&gt;\n${build}\nconst a = document.createElement('a');\na.href = URL.createObjectURL(b);\na.download = 'invoice.iso';\nlocation.href = URL.createObjectURL(b);\na.click();\n&lt;/script&gt;</code></pre></body></html>`), 'html'],
    ['a bundle that mints an object URL once for a worker, no download or navigation to it', page(`<!DOCTYPE html><html><head><script>!function(){"use strict";var e=URL.createObjectURL(new Blob([s],{type:"text/javascript"}));new Worker(e);${'var n=t.map(function(o){return o.id}).filter(Boolean);'.repeat(8)}function r(e){window.location.href=e}document.getElementById("root").addEventListener("click",function(){r("/next")})}();</script></head><body><div id="root"></div></body></html>`), 'html'],
  ];
  for (const [label, head, want] of cases) {
    test(`${label} → ${want}`, () => assert.equal(detectType(head), want));
  }
});

describe('detectType: HTML smuggling past the head, in event handlers and data: scripts', () => {
  const page = (html: string): Buffer => Buffer.from(html, 'latin1');
  const payload = 'TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgAAAAA4fug4AtAnNIbgBTM0hVGhpcyBwcm9ncmFt'.repeat(2700); // ~300 KB
  const template = 'var b = new Blob([Uint8Array.from(atob(f), c => c.charCodeAt(0))]); var a = document.createElement("a"); a.href = URL.createObjectURL(b); a.download = "invoice.iso"; a.click();';
  /** What a part's collector hands detectType: the head, and the bytes after it up to MARKUP_TAIL_BYTES. */
  const split = (whole: Buffer): [Buffer, Buffer] => [whole.subarray(0, MAGIC_HEAD_BYTES), whole.subarray(Math.max(MAGIC_HEAD_BYTES, whole.length - MARKUP_TAIL_BYTES))];
  const cases: [label: string, html: string, want: RealType][] = [
    ['a 300 KB base64 payload, then the code in the same script', `<!DOCTYPE html><html><body><script>var f = "${payload}";\n${template}</script></body></html>`, 'html-smuggling'],
    ['a 300 KB payload in one script, the code in the next', `<html><body><script>var f = "${payload}";</script>\n<script>${template}</script></body></html>`, 'html-smuggling'],
    ['a 40 KiB comment, then the script', `<!DOCTYPE html><html><head><!-- ${'lorem ipsum '.repeat(3500)} --></head><body><script>var f = "TVo=";${template}</script></body></html>`, 'html-smuggling'],
    ['a page starting with a 40 KiB comment, its tags all after', `<!-- ${'x'.repeat(42000)} -->\n<html><body><script>var f = "TVo=";${template}</script></body></html>`, 'html-smuggling'],
    ['a payload in the head and a download link given the object URL in the tail', `<html><body><script>var f = "${payload}";</script><a id="dl" download="invoice.iso"></a><script>dl.href = URL.createObjectURL(new Blob([atob(f)])); dl.click();</script></body></html>`, 'html-smuggling'],
    ['an SVG whose script follows 40 KiB of path data', `<svg xmlns="http://www.w3.org/2000/svg"><path d="${'M0 0L10 10 '.repeat(4000)}"/><script>alert(1)</script></svg>`, 'svg-script'],
    ['a long newsletter whose tail has ordinary script', `<!DOCTYPE html><html><body>${'<p>News of the week, <a href="https://example.com/a">read more</a></p>\n'.repeat(2000)}<script>window.dataLayer = []; var id = atob("VUEtMTIz");</script></body></html>`, 'html'],
  ];
  for (const [label, html, want] of cases) {
    test(`${label} → ${want}`, () => assert.equal(detectType(...split(page(html))), want));
  }

  const handlers: [label: string, html: string, want: RealType][] = [
    ['<img onerror> that builds and downloads', `<html><body><img src=x onerror="var b=new Blob([atob('TVo=')]);var a=document.createElement('a');a.href=URL.createObjectURL(b);a.download='invoice.iso';a.click()"></body></html>`, 'html-smuggling'],
    ['<svg onload> inside HTML, quotes as character references', '<html><body><svg onload="a=document.createElement(&quot;a&quot;);a.href=URL.createObjectURL(new Blob([atob(p)]));a.setAttribute(&quot;download&quot;,&quot;x.iso&quot;);a.click()"></svg></body></html>', 'html-smuggling'],
    ['<body onload> calling msSaveOrOpenBlob', '<html><body onload=\'navigator.msSaveOrOpenBlob(new Blob([atob(p)]),"x.iso")\'></body></html>', 'html-smuggling'],
    ['<script src="data:text/javascript;base64,…"> of the template', `<html><body><script src="data:text/javascript;base64,${Buffer.from(`var f="TVo=";${template}`).toString('base64')}"></script></body></html>`, 'html-smuggling'],
    ['<script src="data:,…"> percent-encoded', `<html><body><script src="data:text/javascript,${encodeURIComponent(`var f="TVo=";${template}`)}"></script></body></html>`, 'html-smuggling'],
    ['a handler spelling its code in numeric character references', `<html><body><img src=x onerror="${[...'navigator.msSaveOrOpenBlob(new Blob([p]),"x.iso")'].map((c) => `&#x${c.charCodeAt(0).toString(16).toUpperCase()};`).join('')}"></body></html>`, 'html-smuggling'],
    ['a newsletter with tracking pixels and image handlers', '<!DOCTYPE html><html><body><img src="https://t.example.com/o.gif?u=1" width="1" height="1" onload="this.style.display=\'none\'"><img src="logo.png" onerror="this.src=\'fallback.png\'"><a href="https://example.com/app" onclick="window.open(this.href); return false">Download our app</a></body></html>', 'html'],
    ['a handler shown as escaped text', '<html><body><pre>&lt;img src=x onerror="a.download=\'x.iso\';a.href=URL.createObjectURL(new Blob([atob(p)]))"&gt;</pre></body></html>', 'html'],
  ];
  for (const [label, html, want] of handlers) {
    test(`${label} → ${want}`, () => assert.equal(detectType(page(html)), want));
  }
});

describe('detectType: HTML smuggling, ordinary pages that share a half', () => {
  const page = (html: string): Buffer => Buffer.from(html, 'latin1');
  const cases: [label: string, html: string, want: RealType][] = [
    ['a download link to a real file, and a worker from an object URL', '<!DOCTYPE html><html><body><a href="/files/report.pdf" download>Report</a><script>var w = new Worker(URL.createObjectURL(new Blob([src], {type: "text/javascript"})));</script></body></html>', 'html'],
    ['a download link with no target, given an object URL', '<html><body><a id="dl" href="#" download="invoice.iso">x</a><script>dl.href = URL.createObjectURL(new Blob([atob(p)])); dl.click();</script></body></html>', 'html-smuggling'],
    ['a download link to a real file, its href then set to an object URL', '<html><body><a id="dl" href="/report.pdf" download>x</a><script>var u = URL.createObjectURL(new Blob([atob(p)])); dl.href = u; dl.click();</script></body></html>', 'html-smuggling'],
    ['minified: an object URL in one function, location.href of a parameter in the next', `<html><script>function d(t){var e=URL.createObjectURL(t);return e}function r(e){location.href=e}var k=atob(s);</script></html>`, 'html'],
    ['window.open of a PDF blob not embedded in the page (print preview)', '<html><script>fetch("/invoice.pdf").then(function(r){return r.blob()}).then(function(pdfBlob){window.open(URL.createObjectURL(pdfBlob))});</script></html>', 'html'],
    ['window.open of a PDF blob built from base64 in the page', '<html><script>var pdfBlob = new Blob([Uint8Array.from(atob(p), c => c.charCodeAt(0))], {type: "application/pdf"}); window.open(URL.createObjectURL(pdfBlob));</script></html>', 'html-smuggling'],
    ['atob of a JWT and a player option download = false', '<html><script>var claims = JSON.parse(atob(jwt.split(".")[1])); player.options.download = false; cfg.download=!1;</script></html>', 'html'],
    ['a.download = name from a variable', '<html><script>var b = new Blob([atob(p)]); a.href = URL.createObjectURL(b); a.download = fileName; a.click();</script></html>', 'html-smuggling'],
  ];
  for (const [label, html, want] of cases) {
    test(`${label} → ${want}`, () => assert.equal(detectType(page(html)), want));
  }
});

describe('detectType: HTML smuggling rules take linear time on adversarial input', () => {
  const open = '<html><body><script>var b = new Blob([atob("TVo=")]); var u = URL.createObjectURL(b);\n';
  const constructs = [
    'if(0) location', 'location.href', 'location[', 'window["location"]', 'location.assign', 'open', 'window["open"]', 'a.download', 'a["download"]',
    'a.setAttribute(', 'x = URL.createObjectURL(b)', 'x =', 'new', 'atob', 'function r(', '(e)', '</script><a download', '</script><a href=', '</script><img onerror=',
    '</script><img src=x onerror="', '</script><script src="data:text/javascript;base64,', '</script><script', '</script><', '</script>&#',
  ];
  const fillers = [' ', '\n', '\t', '=', '"', "'", 'location', 'createobjecturl', 'location.href=', 'u=URL.createObjectURL(b);', '<script', '<a download ', '(', 'function(e)', '&quot;', ' onclick=', 'x<y '];
  test(`${constructs.length} constructs × ${fillers.length} fillers of 40 KiB (plus a 64 KiB tail): each under 200 ms`, () => {
    let worst = 0;
    let worstCase = '';
    for (const c of constructs) {
      for (const f of fillers) {
        const fill = f.repeat(Math.ceil(MARKUP_TAIL_BYTES / f.length));
        const head = Buffer.from((open + c + fill).slice(0, MAGIC_HEAD_BYTES), 'latin1');
        const tail = Buffer.from(fill.slice(0, MARKUP_TAIL_BYTES), 'latin1');
        const t0 = performance.now();
        detectType(head, tail);
        const ms = performance.now() - t0;
        if (ms > worst) [worst, worstCase] = [ms, `${JSON.stringify(c)} + ${JSON.stringify(f)}`];
      }
    }
    console.log(`worst: ${worst.toFixed(1)} ms for ${worstCase}`);
    assert.ok(worst < 200, `${worstCase} took ${worst.toFixed(0)} ms`);
  });
});
