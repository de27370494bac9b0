import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createPrivateKey } from 'node:crypto';
import { zipSync } from 'fflate';
import { SignJWT } from 'jose';
import { readKeySet } from '../../lib/auth/keys.ts';
import { docx, docxBomb, lyingDocxBomb, textImage, textPdf } from '../fixtures/documents.ts';
import {
  attachmentPdf,
  docxPdfPolyglot,
  encryptedEntryDocx,
  encryptedPdf,
  htmlPdfPolyglot,
  launchPdf,
  macroDocx,
  manyEntriesDocx,
  obfuscatedScriptPdf,
  pdfZipPolyglot,
  pngZipPolyglot,
  scriptedPdf,
  zipSlipDocx,
} from '../fixtures/hostile-files.ts';
import { startEmbeddedNode, type EmbeddedNode } from '../support/embedded.ts';
import { chunksOf, waitForJob } from '../support/ingest.ts';

/**
 * A hostile corpus, generated here (no binaries in the repository): malformed and
 * oversized bodies, header floods, forged tokens, SQL/tsquery metacharacters, path
 * traversal and hostile files. Each case is answered with a clear 4xx in the error
 * shape and nothing written to the tenant's rows or objects — or, for a file that
 * passes type sniffing, accepted and then settled by its job (ready, or failed with a
 * catalogued errorCode): never a 5xx, never a hang. The count is printed.
 */
const TENANT = 'hostile';
const MAX_UPLOAD = 2_000_000;

interface Answer {
  status: number;
  body: any;
  text: string;
}

describe('hostile corpus', () => {
  let node: EmbeddedNode;
  let token: string;
  let cases = 0;
  before(async () => {
    node = await startEmbeddedNode({ UPLOAD_MAX_BYTES: String(MAX_UPLOAD) });
    token = await node.token(['editor', 'tenant_admin'], 'mallory', TENANT);
    // The tenant exists (a first request records it), so "nothing written" compares real counts.
    assert.equal((await send('GET', '/api/v1/me')).status, 200);
  });
  after(() => node.stop());

  async function send(method: string, path: string, init: { body?: BodyInit; headers?: Record<string, string>; auth?: string | null } = {}): Promise<Answer> {
    const auth = init.auth === undefined ? token : init.auth;
    const res = await fetch(`${node.base}${path}`, {
      method,
      headers: { ...(auth ? { Authorization: `Bearer ${auth}` } : {}), ...init.headers },
      body: init.body,
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    let body: any = null;
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
    return { status: res.status, body, text };
  }

  /** Rows and objects the tenant holds, all stores the api writes for a request. */
  async function holdings(): Promise<Record<string, number>> {
    const { knex } = await node.node.runtime.stores.db();
    const out: Record<string, number> = {};
    for (const table of ['documents', 'jobs', 'chunks', 'chats', 'messages', 'api_keys', 'artifacts', 'job_outbox']) {
      const [row] = await knex(table).where({ tenant_id: TENANT }).count({ n: '*' });
      out[table] = Number(row?.n ?? 0);
    }
    let objects = 0;
    for await (const _ of (await node.node.runtime.stores.objects()).list(`tenants/${TENANT}/`)) objects++;
    out.objects = objects;
    return out;
  }

  /** A clear 4xx in the error shape, and nothing written. */
  async function refused(what: string, run: () => Promise<Answer>, expect: { status?: number | number[]; code?: string | string[] } = {}): Promise<void> {
    const before = await holdings();
    const answer = await run();
    const where = `${what} → ${answer.status} ${answer.text.slice(0, 200)}`;
    assert.ok(answer.status >= 400 && answer.status < 500, where);
    if (expect.status !== undefined) assert.ok([expect.status].flat().includes(answer.status), where);
    assert.ok(typeof answer.body?.error?.code === 'string' && typeof answer.body.error.message === 'string', `${where}: the error shape`);
    if (expect.code !== undefined) assert.ok([expect.code].flat().includes(answer.body.error.code), where);
    assert.deepEqual(await holdings(), before, `${what}: nothing written`);
    cases++;
  }

  /** Answered, never a 5xx: for inputs that are legal but nasty (search metacharacters). */
  async function answered(what: string, run: () => Promise<Answer>): Promise<Answer> {
    const answer = await run();
    assert.ok(answer.status < 500, `${what} → ${answer.status} ${answer.text.slice(0, 200)}`);
    if (answer.status >= 400) assert.equal(typeof answer.body?.error?.code, 'string', `${what}: the error shape`);
    cases++;
    return answer;
  }

  const json = (method: string, path: string, body: string | Buffer, contentType = 'application/json') => () => send(method, path, { body: body as BodyInit, headers: { 'Content-Type': contentType } });
  const uploadForm = (name: string, bytes: Buffer | string, type = 'application/octet-stream') => () => {
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(typeof bytes === 'string' ? Buffer.from(bytes) : bytes)], { type }), name);
    return send('POST', '/api/v1/documents', { body: form });
  };

  it('malformed, huge, deeply nested and mistyped JSON bodies', async () => {
    for (const path of ['/api/v1/search', '/api/v1/chats', '/v1/embeddings']) {
      await refused(`truncated JSON to ${path}`, json('POST', path, '{"query": "a'), { status: 400, code: 'BAD_REQUEST' });
      await refused(`2 MB+ JSON to ${path}`, json('POST', path, `{"query":"${'a'.repeat(2_200_000)}"}`), { status: 413, code: 'PAYLOAD_TOO_LARGE' });
      await refused(`100 000-deep JSON to ${path}`, json('POST', path, `${'['.repeat(100_000)}${']'.repeat(100_000)}`));
      await refused(`a JSON array to ${path}`, json('POST', path, '[1,2,3]'));
    }
    await answered('deep object inside a valid field', json('POST', '/api/v1/search', JSON.stringify({ query: 'x', filters: JSON.parse(`${'{"a":'.repeat(500)}1${'}'.repeat(500)}`) })));
    await refused('wrong types', json('POST', '/api/v1/search', JSON.stringify({ query: 42, limit: 'all' })), { status: 422, code: 'VALIDATION_FAILED' });
    await refused('JSON sent as text/plain', json('POST', '/api/v1/search', JSON.stringify({ query: 'x' }), 'text/plain'), { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' });
    await refused('form-encoded to a JSON route', json('POST', '/api/v1/chats', 'title=x', 'application/x-www-form-urlencoded'), { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' });
    await refused('XML to a JSON route', json('POST', '/v1/embeddings', '<input>x</input>', 'application/xml'), { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' });
    await refused('invalid UTF-8 in a JSON body', json('POST', '/api/v1/chats', Buffer.concat([Buffer.from('{"title":"'), Buffer.from([0xc3, 0x28, 0xff, 0xfe]), Buffer.from('"}')])), { status: 400, code: 'BAD_REQUEST' });
    await refused('a NUL byte in a string', json('POST', '/api/v1/chats', JSON.stringify({ title: 'a\u0000b' })));
    await refused('__proto__ keys', json('POST', '/api/v1/api-keys', '{"name":"k","__proto__":{"roles":["admin"]},"roles":["admin"]}'), { status: [403, 422] });
    await refused('a 10 000-character title', json('POST', '/api/v1/chats', JSON.stringify({ title: 'x'.repeat(10_000) })), { status: 422 });
  });

  it('header floods and odd requests', async () => {
    const flood: Record<string, string> = {};
    for (let i = 0; i < 2000; i++) flood[`x-flood-${i}`] = 'y'.repeat(20);
    await refused('2000 headers', () => send('GET', '/api/v1/documents', { headers: flood }), { status: 431 });
    await refused('a 64 KiB header', () => send('GET', '/api/v1/documents', { headers: { 'x-big': 'z'.repeat(65_536) } }), { status: 431 });
    await refused('an unknown method on a known path', () => send('PATCH', '/api/v1/search', { body: '{}', headers: { 'Content-Type': 'application/json' } }), { status: 404 });
  });

  it('forged, expired, early, foreign and revoked credentials', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { tid: TENANT, roles: ['admin'] };
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    // Signed with the node's real active key, so only the claim under test is wrong.
    const keyset = (await readKeySet(node.node.runtime.config.auth.keysFile))!;
    const active = keyset.keys.find((k) => k.state === 'active')!;
    const privateKey = createPrivateKey({ key: active.jwk as never, format: 'jwk' });
    const signed = (header: { kid?: string }, set: (j: SignJWT) => SignJWT) =>
      set(new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: header.kid ?? active.kid }).setSubject('mallory').setIssuer('ragmesh')).sign(privateKey);
    const tokens: Array<[string, string, string[]]> = [
      ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims, sub: 'mallory', iss: 'ragmesh', aud: 'ragmesh', exp: now + 60 })}.`, ['INVALID_TOKEN']],
      ['a made-up kid', await signed({ kid: 'no-such-key' }, (j) => j.setAudience('ragmesh').setExpirationTime(now + 60)), ['UNKNOWN_SIGNING_KEY']],
      ['expired', await signed({}, (j) => j.setAudience('ragmesh').setExpirationTime(now - 60)), ['TOKEN_EXPIRED']],
      ['not yet valid', await signed({}, (j) => j.setAudience('ragmesh').setNotBefore(now + 3600).setExpirationTime(now + 7200)), ['TOKEN_NOT_YET_VALID']],
      ['another audience', await signed({}, (j) => j.setAudience('someone-else').setExpirationTime(now + 60)), ['INVALID_TOKEN']],
      ['no exp', await signed({}, (j) => j.setAudience('ragmesh')), ['INVALID_TOKEN']],
      ['a flipped signature byte', `${(await node.tokens.sign({ tenantId: TENANT, userId: 'mallory', roles: ['admin'] }, 60)).slice(0, -3)}AAA`, ['INVALID_TOKEN']],
      ['HS256 with no secret to check it', await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('mallory').setIssuer('ragmesh').setExpirationTime(now + 60).sign(new TextEncoder().encode('x'.repeat(40))), ['INVALID_TOKEN']],
      ['garbage', 'not-a-token', ['INVALID_TOKEN']],
      ['a malformed API key', 'rmk_zz_zz', ['INVALID_API_KEY']],
      ['an API key with a wrong secret', `rmk_${'a'.repeat(18)}_${'b'.repeat(43)}`, ['INVALID_API_KEY']],
    ];
    const created = await send('POST', '/api/v1/api-keys', { body: JSON.stringify({ name: 'soon revoked' }), headers: { 'Content-Type': 'application/json' } });
    assert.equal(created.status, 201);
    assert.equal((await send('DELETE', `/api/v1/api-keys/${created.body.id}`)).status, 200);
    tokens.push(['a revoked API key', created.body.key, ['API_KEY_REVOKED']]);
    for (const [what, bad, codes] of tokens) {
      await refused(`token: ${what}`, () => send('POST', '/api/v1/chats', { auth: bad, body: '{}', headers: { 'Content-Type': 'application/json' } }), { status: 401, code: codes });
    }
    await refused('Authorization without Bearer', () => send('GET', '/api/v1/documents', { auth: null, headers: { Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } }), { status: 401 });
  });

  it('SQL and tsquery metacharacters in searches are answered, never a 5xx', async () => {
    const queries = ["'); DROP TABLE documents;--", "' OR 1=1 --", 'a & | ! ( ) :* <->', '\\\\', '%_%', '"unterminated', '$$ $1 ::text', 'a:* & !b | (c <-> d)', '*'.repeat(500), '🙂'.repeat(200)];
    for (const query of queries) {
      for (const mode of ['hybrid', 'lexical']) {
        await answered(`search ${mode} ${JSON.stringify(query).slice(0, 40)}`, () => send('POST', '/api/v1/search', { body: JSON.stringify({ query, mode }), headers: { 'Content-Type': 'application/json' } }));
      }
    }
    const { knex } = await node.node.runtime.stores.db();
    assert.ok(await knex.schema.hasTable('documents'), 'the tables are all still there');
  });

  it('path traversal in ids, keys and file names', async () => {
    for (const id of ['..%2F..%2Fetc%2Fpasswd', '..', '%00', '00000000-0000-4000-8000-000000000000%2F..']) {
      await refused(`document id ${id}`, () => send('GET', `/api/v1/documents/${id}`), { status: [404, 422] });
    }
    await refused('upload complete with a traversal id', () => send('POST', '/api/v1/uploads/..%2F..%2Fsecrets/complete', { body: '{}', headers: { 'Content-Type': 'application/json' } }), { status: [404, 422] });
    await refused('upload PUT with a traversal id and no signature', () => send('PUT', '/api/v1/uploads/..%2F..%2Fsecrets%2Fjwt-secret', { auth: null, body: 'x' }), { status: [401, 403, 404] });
    await refused('an API key id with traversal', () => send('DELETE', '/api/v1/api-keys/..%2F..%2F'), { status: [404, 422] });
    for (const name of ['../../etc/passwd.txt', '..\\..\\windows\\win.ini.txt', '/etc/shadow.txt']) {
      // Names are data, never paths: accepted under a generated key, or refused.
      const answer = await answered(`upload named ${name}`, uploadForm(name, `a file called ${name}\n`, 'text/plain'));
      if (answer.status === 202 || answer.status === 200) {
        const key = JSON.stringify(answer.body);
        assert.ok(!/"key":"[^"]*\.\./.test(key), 'no traversal in a stored key');
        await settled(name, answer);
      }
    }
  });

  /** A file that passed sniffing: its job ends (ready, or failed with a catalogued code), never hangs. */
  async function settled(what: string, answer: Answer): Promise<void> {
    const jobId = answer.body?.job?.id;
    if (!jobId) return;
    const job = await waitForJob(node.base, token, jobId, ['ready', 'failed', 'canceled'], 60_000).catch((err: Error) => {
      throw new Error(`${what}: ${err.message}`);
    });
    if (process.env.HOSTILE_TRACE) console.log(`#   ${what} → ${job.status} ${job.errorCode ?? ''}`);
    if (job.status === 'failed') assert.ok(job.errorCode && job.errorCode !== 'INTERNAL', `${what}: failed with ${job.errorCode}`);
    if (job.status === 'ready') {
      // What got indexed is the file's own text: no external entity (XXE) was resolved.
      const chunks = await chunksOf(node.base, token, answer.body.document.id);
      assert.ok(!chunks.some((c) => /root:[^:]*:0:0:/.test(c.text)), `${what}: /etc/passwd in the index`);
    }
  }

  it('hostile files: bombs, polyglots, encrypted and scripted PDFs, huge lines, bad encodings', async () => {
    const pdf = (body: string) => Buffer.from(`%PDF-1.7\n${body}\n%%EOF\n`, 'latin1');
    const zipOf = (files: Record<string, Uint8Array | string>) =>
      Buffer.from(zipSync(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, typeof v === 'string' ? new TextEncoder().encode(v) : v]))));
    const files: Array<[string, Buffer | string, string]> = [
      ['bomb.docx', docxBomb(30), 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'],
      ['lying-bomb.docx', lyingDocxBomb(30), 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'],
      ['nested.zip', zipOf({ 'inner.zip': zipOf({ 'a.txt': 'x'.repeat(1_000_000) }) }), 'application/zip'],
      ['slip.docx', zipOf({ '[Content_Types].xml': '<Types/>', '../../../evil.txt': 'pwned', 'word/document.xml': '<w:document/>' }), 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'],
      ['laughs.docx', zipOf({ '[Content_Types].xml': '<Types/>', 'word/document.xml': `<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "${'ha'.repeat(50)}">${Array.from({ length: 9 }, (_, i) => `<!ENTITY ${String.fromCharCode(98 + i)} "${`&${String.fromCharCode(97 + i)};`.repeat(10)}">`).join('')}]><w:document><w:body><w:p><w:r><w:t>&j;</w:t></w:r></w:p></w:body></w:document>` }), 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'],
      ['encrypted.pdf', pdf('1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n3 0 obj << /Filter /Standard /V 2 /R 3 /O (xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx) /U (xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx) /P -4 >> endobj\ntrailer << /Root 1 0 R /Encrypt 3 0 R >>'), 'application/pdf'],
      ['scripted.pdf', pdf('1 0 obj << /Type /Catalog /Pages 2 0 R /OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >> >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>'), 'application/pdf'],
      ['truncated.pdf', Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog /Pa'), 'application/pdf'],
      ['header-only.pdf', Buffer.from('%PDF-'), 'application/pdf'],
      ['xref-loop.pdf', pdf('1 0 obj << /Type /Catalog /Pages 1 0 R >> endobj\nxref\n0 2\n0000000000 65535 f \n0000000009 00000 n \ntrailer << /Root 1 0 R /Prev 9 >>\nstartxref\n9'), 'application/pdf'],
      ['deep.pdf', pdf(`1 0 obj ${'['.repeat(50_000)}${']'.repeat(50_000)} endobj\ntrailer << /Root 1 0 R >>`), 'application/pdf'],
      ['polyglot.pdf', Buffer.concat([pdf('1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>'), zipOf({ 'payload.js': 'alert(1)' })]), 'application/pdf'],
      ['polyglot.zip', Buffer.concat([Buffer.from('%PDF-1.7\n'), zipOf({ 'word/document.xml': '<w:document/>' })]), 'application/zip'],
      ['exe-as.pdf', Buffer.concat([Buffer.from('MZ'), Buffer.alloc(4000, 0x90)]), 'application/pdf'],
      ['elf.txt', Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(4000, 0)]), 'text/plain'],
      ['one-huge-line.txt', 'word '.repeat(380_000), 'text/plain'],
      ['no-spaces.txt', 'x'.repeat(1_900_000), 'text/plain'],
      ['bad-utf8.txt', Buffer.concat([Buffer.from('caf'), Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28, 0x8c, 0xbc]), Buffer.from(' ok\n')]), 'text/plain'],
      ['utf16-no-bom.txt', Buffer.from('Hello hostile world, in UTF-16 without a mark.\n', 'utf16le'), 'text/plain'],
      ['nul-bytes.txt', Buffer.from('a\u0000b\u0000c\u0000 text with NULs\n'), 'text/plain'],
      ['controls.md', `# Title\n${'\u0007\u001b[31m\u202e'.repeat(2000)}\n`, 'text/markdown'],
      ['script.html', '<html><body><script>while(true){}</script><iframe src="file:///etc/passwd"></iframe><p>text</p></body></html>', 'text/html'],
      ['deep.html', `<html><body>${'<div>'.repeat(100_000)}deep${'</div>'.repeat(100_000)}</body></html>`, 'text/html'],
      ['entity.html', `<p>${'&amp;'.repeat(200_000)}</p>`, 'text/html'],
      ['xxe.docx', zipOf({ '[Content_Types].xml': '<Types/>', 'word/document.xml': '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><w:document><w:body><w:p><w:r><w:t>&x;</w:t></w:r></w:p></w:body></w:document>' }), 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'],
      ['huge-dims.png', Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]), Buffer.from('IHDR'), Buffer.from([0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 8, 2, 0, 0, 0, 0, 0, 0, 0])]), 'image/png'],
    ];
    for (const [name, bytes, type] of files) {
      const answer = await answered(`file ${name}`, uploadForm(name, bytes, type));
      if (process.env.HOSTILE_TRACE) console.log(`# ${name}: ${answer.status} ${answer.body?.error?.code ?? answer.body?.job?.status ?? ''}`);
      if (answer.status >= 400) {
        assert.ok(answer.status < 500, name);
      } else {
        await settled(name, answer);
      }
    }
    await refused('an empty file', uploadForm('empty.txt', Buffer.alloc(0), 'text/plain'), { status: 400 });
    await refused('a file over UPLOAD_MAX_BYTES', uploadForm('big.txt', Buffer.alloc(MAX_UPLOAD + 10, 0x61), 'text/plain'), { status: 413, code: 'FILE_TOO_LARGE' });
    await refused('a multipart body with no file part', () => {
      const form = new FormData();
      form.append('title', 'nothing');
      return send('POST', '/api/v1/documents', { body: form });
    }, { status: [400, 422] });
    await refused('a broken multipart boundary', () => send('POST', '/api/v1/documents', { body: '--x\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nabc', headers: { 'Content-Type': 'multipart/form-data; boundary=y' } }), { status: [400, 422] });
    await refused('JSON to the upload route', json('POST', '/api/v1/documents', '{"file":"x"}'), { status: [400, 415, 422] });
  });

  it('suspicious files are refused at upload, multipart and presigned, leaving no object, row or job', async () => {
    const PDF = 'application/pdf';
    const DOCX = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';
    const suspicious: Array<[string, Buffer, string, string]> = [
      ['encrypted.pdf', encryptedPdf(), PDF, 'ENCRYPTED_PDF'],
      ['scripted.pdf', await scriptedPdf(), PDF, 'ACTIVE_CONTENT'],
      ['attachment.pdf', await attachmentPdf(), PDF, 'ACTIVE_CONTENT'],
      ['obfuscated.pdf', obfuscatedScriptPdf(), PDF, 'ACTIVE_CONTENT'],
      ['launch.pdf', launchPdf(), PDF, 'ACTIVE_CONTENT'],
      ['zip-inside.pdf', await pdfZipPolyglot(), PDF, 'POLYGLOT'],
      ['pdf-header.docx', docxPdfPolyglot(), DOCX, 'POLYGLOT'],
      ['html-first.pdf', await htmlPdfPolyglot(), PDF, 'POLYGLOT'],
      ['gifar.png', pngZipPolyglot(await textImage(['gifar'])), 'image/png', 'POLYGLOT'],
      ['bomb.docx', docxBomb(5), DOCX, 'ARCHIVE_BOMB'],
      ['lying-bomb.docx', lyingDocxBomb(5), DOCX, 'ARCHIVE_BOMB'],
      ['many-entries.docx', manyEntriesDocx(), DOCX, 'ARCHIVE_BOMB'],
      ['slip.docx', zipSlipDocx(), DOCX, 'UNSAFE_ARCHIVE'],
      ['encrypted-entry.docx', encryptedEntryDocx(), DOCX, 'UNSAFE_ARCHIVE'],
      ['macros.docx', macroDocx(), DOCX, 'ACTIVE_CONTENT'],
      ['report.docx', await textPdf([['A PDF named as a DOCX.']]), 'application/octet-stream', 'TYPE_MISMATCH'],
      ['notes.txt', docx([{ text: 'A DOCX sent as a PNG.' }]), 'image/png', 'TYPE_MISMATCH'],
      ['invoice.pdf.exe', Buffer.from('plain text under an executable name\n'), 'application/octet-stream', 'TYPE_MISMATCH'],
    ];
    const presigned = (name: string, bytes: Buffer) => async (): Promise<Answer> => {
      const created = await send('POST', '/api/v1/uploads');
      assert.equal(created.status, 201, created.text);
      const put = await fetch(new URL(created.body.url, node.base), { method: 'PUT', body: new Uint8Array(bytes) });
      assert.equal(put.status, 200, await put.text());
      return send('POST', `/api/v1/uploads/${created.body.uploadId}/complete`, { body: JSON.stringify({ filename: name }), headers: { 'Content-Type': 'application/json' } });
    };
    for (const [name, bytes, type, code] of suspicious) {
      const status = code === 'TYPE_MISMATCH' ? 415 : code === 'ARCHIVE_BOMB' ? 413 : 422;
      await refused(`multipart ${name}`, uploadForm(name, bytes, type), { status, code });
      // The presigned path declares no content type: a mismatch there is the name's alone.
      await refused(`presigned ${name}`, presigned(name, bytes), { status, code });
    }
    // One refused file fails a multipart request of several, and none of them is kept.
    await refused('a clean file beside a scripted PDF', () => {
      const form = new FormData();
      form.append('file', new Blob([new TextEncoder().encode('a clean note\n')], { type: 'text/plain' }), 'clean.txt');
      form.append('file', new Blob([new Uint8Array(encryptedPdf())], { type: PDF }), 'locked.pdf');
      return send('POST', '/api/v1/documents', { body: form });
    }, { status: 422, code: 'ENCRYPTED_PDF' });
  });

  it('prints the count', () => {
    assert.ok(cases >= 60, `only ${cases} cases`);
    console.log(`# hostile corpus: ${cases} cases`);
  });
});
