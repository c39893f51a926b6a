import { describe, expect, it } from 'vitest';
import { makeMatcher } from '../src/index.js';
import { formatOf, redactText, REDACTED_VALUE as R } from '../src/redact.js';

describe('redactText', () => {
  it('KEY=VALUE files: replaces secret values, keeps keys, comments and other lines', () => {
    const text = '# db\nDB_PASSWORD=hunter2\nexport API_KEY="abc"\nDB_HOST=db.local\nJWT_SECRET =  s3\nEMPTY_TOKEN=\n';
    const { text: out, keys } = redactText(text, 'env');
    expect(out).toBe(`# db\nDB_PASSWORD=${R}\nexport API_KEY=${R}\nDB_HOST=db.local\nJWT_SECRET =  ${R}\nEMPTY_TOKEN=\n`);
    expect(keys).toEqual(['DB_PASSWORD', 'API_KEY', 'JWT_SECRET']);
  });

  it('JSON: nested keys, arrays; keeps the structure and indentation', () => {
    const text = JSON.stringify({ name: 'x', db: { password: 'p', port: 5432 }, agents: [{ apiKey: 'k', model: 'm' }] }, null, 4) + '\n';
    const { text: out } = redactText(text, 'json');
    expect(JSON.parse(out)).toEqual({ name: 'x', db: { password: R, port: 5432 }, agents: [{ apiKey: R, model: 'm' }] });
    expect(out).toContain('\n    "name"');
    expect(out.endsWith('\n')).toBe(true);
  });

  it('JSON that does not parse falls back to a line-based pass', () => {
    const { text: out } = redactText('{\n  // comment\n  "token": "abc",\n  "user": "bob",\n}\n', 'json');
    expect(out).toContain(`"token": "${R}",`);
    expect(out).toContain('"user": "bob"');
  });

  it('YAML: keeps keys, comments and block structure', () => {
    const text = 'db:\n  host: db.local\n  password: "hunter2"   # change me\n  secret_key: abc\nlist:\n  - token: t1\n';
    const { text: out } = redactText(text, 'yaml');
    expect(out).toBe(`db:\n  host: db.local\n  password: "${R}"   # change me\n  secret_key: "${R}"\nlist:\n  - token: "${R}"\n`);
  });

  it('extra key patterns', () => {
    const { text } = redactText('LICENSE_CODE=1234\nOTHER=1\n', 'env', (k) => /license/i.test(k));
    expect(text).toBe(`LICENSE_CODE=${R}\nOTHER=1\n`);
  });

  it('picks the format from the file name', () => {
    expect(formatOf('/x/.env')).toBe('env');
    expect(formatOf('/x/a.JSON')).toBe('json');
    expect(formatOf('/x/values.yml')).toBe('yaml');
  });
});

describe('makeMatcher', () => {
  const roots = ['/opt/app/config'];
  it('matches base names, relative paths and absolute paths', () => {
    const m = makeMatcher(['*.tmp', 'secrets/**', '/opt/app/config/local.env'], roots)!;
    expect(m('/opt/app/config/deep/x.tmp')).toBe(true);
    expect(m('/opt/app/config/secrets/a/b')).toBe(true);
    expect(m('/opt/app/config/local.env')).toBe(true);
    expect(m('/opt/app/config/app.yaml')).toBe(false);
  });
  it('** globs reach dotfiles', () => {
    expect(makeMatcher(['**/.env'], roots)!('/opt/app/config/sub/.env')).toBe(true);
  });
});
