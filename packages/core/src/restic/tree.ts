import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { BackupError } from '../errors.js';
import { GO_ZERO_TIME, goJsonString, goQuote, goUnquote } from './go-json.js';
import type { ResticNode } from './node.js';

/**
 * Tree blobs: `{"nodes":[...]}` and a newline, nodes sorted by name, each node as Go's
 * encoding/json writes restic's Node struct (field order, omitempty, escaping). A tree's id is
 * the sha256 of this text, so the same folder gives the same id here and in restic.
 */

const ID = /^[0-9a-f]{64}$/;

/** The bytes a node's name sorts by (Go compares strings bytewise). */
export function nameBytes(node: ResticNode): Buffer {
  return node.rawName ?? Buffer.from(node.name, 'utf8');
}

/** Sorts nodes by name bytes, as restic's Nodes.Less does. */
export function sortNodes(nodes: ResticNode[]): ResticNode[] {
  const keyed = nodes.map((node) => ({ node, key: nameBytes(node) }));
  keyed.sort((a, b) => Buffer.compare(a.key, b.key));
  return keyed.map((k) => k.node);
}

function field(name: string, json: string): string {
  return `"${name}":${json}`;
}

/** One node as restic (Go) writes it. */
export function encodeNode(node: ResticNode): string {
  const parts = [field('name', goJsonString(goQuote(nameBytes(node)))), field('type', goJsonString(node.type))];
  if (node.mode) parts.push(field('mode', String(node.mode)));
  parts.push(field('mtime', goJsonString(node.mtime || GO_ZERO_TIME)));
  parts.push(field('atime', goJsonString(node.atime || GO_ZERO_TIME)));
  parts.push(field('ctime', goJsonString(node.ctime || GO_ZERO_TIME)));
  parts.push(field('uid', String(node.uid)), field('gid', String(node.gid)));
  if (node.user) parts.push(field('user', goJsonString(node.user)));
  if (node.group) parts.push(field('group', goJsonString(node.group)));
  if (node.inode) parts.push(field('inode', node.inode.toString()));
  if (node.deviceId) parts.push(field('device_id', node.deviceId.toString()));
  if (node.size) parts.push(field('size', String(node.size)));
  if (node.links) parts.push(field('links', String(node.links)));
  if (node.linkTarget) parts.push(field('linktarget', goJsonString(node.linkTarget)));
  if (node.linkTargetRaw?.length) parts.push(field('linktarget_raw', `"${node.linkTargetRaw.toString('base64')}"`));
  if (node.extendedAttributes?.length) {
    const attrs = node.extendedAttributes.map((a) => `{"name":${goJsonString(a.name)},"value":${goJsonString(a.value)}}`);
    parts.push(field('extended_attributes', `[${attrs.join(',')}]`));
  }
  if (node.device) parts.push(field('device', node.device.toString()));
  parts.push(field('content', node.content === null ? 'null' : `[${node.content.map((id) => `"${id}"`).join(',')}]`));
  if (node.subtree) parts.push(field('subtree', `"${node.subtree}"`));
  if (node.error) parts.push(field('error', goJsonString(node.error)));
  return `{${parts.join(',')}}`;
}

/** A tree's blob: its nodes sorted by name. */
export function encodeTree(nodes: ResticNode[]): Buffer {
  return Buffer.from(`{"nodes":[${sortNodes(nodes).map(encodeNode).join(',')}]}\n`, 'utf8');
}

export function blobId(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

// Numbers that can pass 2^53 are quoted before JSON.parse so no digit is lost. A key pattern
// cannot match inside a string value: there its quotes are escaped.
const bigNumbers = /"(inode|device_id|device)":(\d{16,})/g;

type Json = Record<string, unknown>;

function optional<T>(value: unknown, check: (v: unknown) => v is T, what: string): T | undefined {
  if (value === undefined || value === null) return undefined;
  if (!check(value)) throw new Error(`${what} is not valid`);
  return value;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isBig = (v: unknown): v is number | string => isCount(v) || (typeof v === 'string' && /^\d+$/.test(v));
const isId = (v: unknown): v is string => typeof v === 'string' && ID.test(v);

function decodeNode(raw: Json): ResticNode {
  if (typeof raw.name !== 'string' || typeof raw.type !== 'string') throw new Error('a node without a name or type');
  const bytes = goUnquote(raw.name);
  const node: ResticNode = {
    name: isUtf8(bytes) ? bytes.toString('utf8') : raw.name,
    type: raw.type,
    mtime: optional(raw.mtime, isString, 'mtime') ?? GO_ZERO_TIME,
    atime: optional(raw.atime, isString, 'atime') ?? GO_ZERO_TIME,
    ctime: optional(raw.ctime, isString, 'ctime') ?? GO_ZERO_TIME,
    uid: optional(raw.uid, isCount, 'uid') ?? 0,
    gid: optional(raw.gid, isCount, 'gid') ?? 0,
    content: null,
  };
  if (!isUtf8(bytes)) node.rawName = bytes;
  const mode = optional(raw.mode, isCount, 'mode');
  if (mode !== undefined) node.mode = mode;
  for (const key of ['user', 'group', 'linktarget', 'error'] as const) {
    const value = optional(raw[key], isString, key);
    if (value !== undefined) node[key === 'linktarget' ? 'linkTarget' : key] = value;
  }
  for (const [key, prop] of [['inode', 'inode'], ['device_id', 'deviceId'], ['device', 'device']] as const) {
    const value = optional(raw[key], isBig, key);
    if (value !== undefined) node[prop] = BigInt(value);
  }
  const size = optional(raw.size, isCount, 'size');
  if (size !== undefined) node.size = size;
  const links = optional(raw.links, isCount, 'links');
  if (links !== undefined) node.links = links;
  const linkRaw = optional(raw.linktarget_raw, isString, 'linktarget_raw');
  if (linkRaw !== undefined) {
    node.linkTargetRaw = Buffer.from(linkRaw, 'base64');
    node.linkTarget = node.linkTargetRaw.toString('utf8');
  }
  const attrs = optional(raw.extended_attributes, Array.isArray, 'extended_attributes');
  if (attrs) node.extendedAttributes = attrs.map((a: Json) => ({ name: String(a.name), value: String(a.value ?? '') }));
  const content = optional(raw.content, Array.isArray, 'content');
  if (content) {
    if (!content.every(isId)) throw new Error('content holds something that is not a blob id');
    node.content = content;
  }
  const subtree = optional(raw.subtree, isId, 'subtree');
  if (subtree !== undefined) node.subtree = subtree;
  return node;
}

/** Parses a tree blob; `label` names it in errors (e.g. the tree's id). */
export function decodeTree(data: Uint8Array, label: string): ResticNode[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8').replace(bigNumbers, '"$1":"$2"'));
  } catch (err) {
    throw new BackupError('E_INTEGRITY', `restic tree ${label} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const nodes = (parsed as Json | null)?.nodes;
  if (nodes === null) return [];
  if (!Array.isArray(nodes)) throw new BackupError('E_INTEGRITY', `restic tree ${label} has no "nodes" list`);
  return nodes.map((raw: unknown, i) => {
    try {
      if (typeof raw !== 'object' || raw === null) throw new Error('a node that is not an object');
      return decodeNode(raw as Json);
    } catch (err) {
      throw new BackupError('E_INTEGRITY', `restic tree ${label}, node ${i}: ${(err as Error).message}`, { cause: err });
    }
  });
}
