// The leaf parts of a message as the splitter gives them: numbering, header lines, declared type, decoded bytes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type LeafPart, MimeLeafSplitter } from 'postfix-milter-ts/content/mime-leaf-splitter.js';

interface Seen {
  readonly part: LeafPart;
  readonly content: string;
}

async function split(raw: string, step = raw.length, maxChildNodes = 100): Promise<{ leaves: Seen[]; errors: string[]; ambiguous: string[] }> {
  const leaves: Seen[] = [];
  const errors: string[] = [];
  const ambiguous: string[] = [];
  const splitter = new MimeLeafSplitter({
    maxChildNodes,
    onLeaf: (part) => {
      const chunks: Buffer[] = [];
      return { write: (b) => chunks.push(b), end: () => leaves.push({ part, content: Buffer.concat(chunks).toString('latin1') }) };
    },
    onError: (err) => errors.push(err.message),
    onAmbiguous: (partId, what) => ambiguous.push(`${partId ?? 'message'}: ${what}`),
  });
  const bytes = Buffer.from(raw, 'latin1');
  for (let i = 0; i < bytes.length; i += step) splitter.write(bytes.subarray(i, i + step));
  splitter.end();
  await splitter.ended;
  return { leaves, errors, ambiguous };
}

const NESTED =
  'Subject: t\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="o"\r\n\r\npreamble\r\n' +
  '--o\r\nContent-Type: multipart/alternative; boundary="i"\r\n\r\n' +
  '--i\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nsoft=\r\n break =3D\r\n' +
  '--i\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--i--\r\n' +
  '--o\r\nContent-Type: application/octet-stream;\r\n name="a.exe"\r\nContent-Disposition: ATTACHMENT\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQ\r\nAA==\r\n' +
  '--o\r\nContent-Disposition: attachment; filename="run.bat"\r\n\r\n@echo off\r\n' +
  '--o\r\nContent-Type: multipart/mixed\r\n\r\nboundary-less multipart: structure, not a leaf\r\n--o--\r\nepilogue\r\n';

describe('MimeLeafSplitter', () => {
  test('headers a mail client could read another way are reported, with the node', async () => {
    const attachment = '--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1\r\nContent-Type: application/javascript; name="invoice.js"\r\n\r\nx\r\n--b1--\r\n';
    const twoTypes = `Subject: t\r\nContent-Type: text/plain\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n${attachment}`;
    assert.deepEqual((await split(twoTypes)).ambiguous, ['message: Content-Type given 2 times: text/plain, multipart/mixed']);
    const twoBoundaries = `Subject: t\r\nContent-Type: multipart/mixed; boundary="zz"; boundary="b1"\r\n\r\n${attachment}`;
    assert.deepEqual((await split(twoBoundaries)).ambiguous, ['message: boundary given 2 ways']);
    const twoEncodings = 'Subject: t\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="o"\r\n\r\n--o\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQ\r\n--o--\r\n';
    assert.deepEqual((await split(twoEncodings)).ambiguous, ['1: Content-Transfer-Encoding given 2 ways: 7bit, base64']);
    // Repeated headers that agree, and ordinary messages, are not ambiguous.
    const repeated = `Subject: t\r\nContent-Type: multipart/mixed; boundary="b1"\r\ncontent-type: Multipart/Mixed;\r\n boundary=b1\r\n\r\n${attachment}`;
    assert.deepEqual((await split(repeated)).ambiguous, []);
    assert.deepEqual((await split(NESTED)).ambiguous, ['4: multipart without a boundary we can split on']);
    // A boundary after a comma is no boundary to mailsplit, but Thunderbird splits on it: the parts would go unseen.
    const comma = `Subject: t\r\nContent-Type: multipart/mixed, boundary="b1"\r\n\r\n${attachment}`;
    const split1 = await split(comma);
    assert.deepEqual(split1.ambiguous, ['message: multipart without a boundary we can split on']);
    assert.deepEqual(split1.leaves, []);
    assert.deepEqual((await split(`Subject: t\r\nContent-Type: multipart/mixed; boundary=""\r\n\r\n${attachment}`)).ambiguous, ['message: multipart without a boundary we can split on']);
  });

  test('every leaf, numbered like IMAP, with its header lines and decoded content', async () => {
    for (const step of [NESTED.length, 1, 7]) {
      const { leaves, errors } = await split(NESTED, step);
      assert.deepEqual(errors, []);
      assert.deepEqual(
        leaves.map(({ part, content }) => [part.partId, part.contentType, part.disposition, part.filename, content]),
        [
          ['1.1', 'text/plain', undefined, undefined, 'soft break ='],
          ['1.2', 'text/html', undefined, undefined, '<p>x</p>'],
          ['2', 'application/octet-stream', 'attachment', 'a.exe', 'MZ\x90\x00'],
          // No Content-Type: the caller decides the default (mailsplit would guess one from the name).
          ['3', undefined, 'attachment', 'run.bat', '@echo off'],
        ],
        `fed ${step} bytes at a time`,
      );
      assert.deepEqual(leaves[2]?.part.headerLines.map((l) => l.key), ['content-type', 'content-disposition', 'content-transfer-encoding']);
      assert.equal(leaves[2]?.part.headerLines[0]?.line, 'Content-Type: application/octet-stream;\r\n name="a.exe"');
    }
  });

  test('a single-part message is one leaf without a part id; an attached message is a leaf, not walked', async () => {
    const single = await split('Subject: s\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n');
    assert.deepEqual(single.leaves.map(({ part, content }) => [part.partId, part.contentType, content]), [[undefined, undefined, 'hi']]);
    const attached = await split('Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n\r\nx\r\n--c--\r\n--b--\r\n');
    assert.deepEqual(attached.leaves.map(({ part, content }) => [part.partId, part.contentType, content.split('\r\n')[0]]), [['1', 'message/rfc822', 'Subject: inner']]);
  });

  test('more parts than maxChildNodes is an error, and the leaf open at that point still ends', async () => {
    const raw = `Content-Type: multipart/mixed; boundary=b\r\n\r\n${'--b\r\nContent-Type: text/plain\r\n\r\nx\r\n'.repeat(5)}--b--\r\n`;
    const { leaves, errors } = await split(raw, raw.length, 3);
    assert.equal(errors.length, 1);
    assert.ok(leaves.length <= 3, `${leaves.length} leaves`);
  });
});
