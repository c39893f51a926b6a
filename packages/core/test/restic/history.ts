import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** A source that changes between snapshots: a model replaced, a log growing, configs edited. */
export async function makeHistory(source: string, step: number): Promise<void> {
  await mkdir(path.join(source, 'configs'), { recursive: true });
  await writeFile(path.join(source, 'model.bin'), randomBytes(6_000_000 + step));
  const line = (i: number) => `2024-05-01T12:00:00Z level=info step=${step} request=${i} ${randomBytes(8).toString('hex')}\n`;
  await appendFile(path.join(source, 'app.log'), Array.from({ length: 8000 }, (_, i) => line(i)).join(''));
  for (let i = 0; i < 40; i++) if (step === 0 || i % 4 === step % 4) await writeFile(path.join(source, 'configs', `c${i}.yaml`), `name: c${i}\nstep: ${step}\n${randomBytes(3000).toString('base64')}\n`);
}

