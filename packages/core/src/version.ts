import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { name: string; version: string };

export const TOOL_NAME = 'sutazai-backup';
export const CORE_VERSION: string = pkg.version;
