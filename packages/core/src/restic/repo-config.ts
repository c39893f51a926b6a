import { randomBytes } from 'node:crypto';
import { BackupError } from '../errors.js';
import { parsePolynomial, randomPolynomial } from './polynomial.js';

/**
 * The repository's `config` file (doc/design.rst "Repository Format"): the format version, the
 * repository's random id and the chunker polynomial, sealed under the master key but never
 * compressed (a reader learns from it whether the rest is).
 */

export interface RepoConfigJson {
  version: number;
  id: string;
  chunker_polynomial: string;
}

/** What a config says, checked. */
export interface RepoConfig {
  /** 1 or 2; we write 2, the first that compresses. */
  version: 1 | 2;
  id: string;
  /** Hex, as restic writes it; irreducible, of degree 53 when we made it. */
  chunkerPolynomial: string;
}

export function newRepoConfig(chunkerPolynomial?: string): RepoConfig {
  if (chunkerPolynomial !== undefined && parsePolynomial(chunkerPolynomial) === undefined) {
    throw new BackupError('E_USAGE', `chunker polynomial ${JSON.stringify(chunkerPolynomial)} is not hex for an irreducible polynomial`);
  }
  return {
    version: 2,
    id: randomBytes(32).toString('hex'),
    chunkerPolynomial: chunkerPolynomial?.toLowerCase().replace(/^0+/, '') ?? randomPolynomial(),
  };
}

export function repoConfigJson(config: RepoConfig): RepoConfigJson {
  return { version: config.version, id: config.id, chunker_polynomial: config.chunkerPolynomial };
}

/** Checks a decrypted config as restic does: a known version, an id, an irreducible polynomial. */
export function parseRepoConfig(value: unknown, where: string): RepoConfig {
  const json = value as Partial<RepoConfigJson> | null;
  const bad = (problem: string) => new BackupError('E_INTEGRITY', `${where}: ${problem}`, { details: { object: where } });
  if (!json || typeof json !== 'object') throw bad('is not a JSON object');
  if (json.version !== 1 && json.version !== 2) {
    throw bad(`repository version ${JSON.stringify(json.version)} is not supported (restic's versions 1 and 2 are)`);
  }
  if (typeof json.id !== 'string' || json.id === '') throw bad('has no repository id');
  if (parsePolynomial(json.chunker_polynomial) === undefined) throw bad('its chunker polynomial is missing or not irreducible');
  return { version: json.version, id: json.id, chunkerPolynomial: json.chunker_polynomial as string };
}
