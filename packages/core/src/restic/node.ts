import type { BigIntStats } from 'node:fs';
import { formatGoTime } from './go-json.js';
import { groupName, userName } from './users.js';

/** What a tree entry is (restic's node types; `irregular` comes from Windows). */
export type NodeType = 'file' | 'dir' | 'symlink' | 'dev' | 'chardev' | 'fifo' | 'socket' | 'irregular';

/**
 * One entry of a restic tree (restic's internal/restic/node.go), the fields in restic's order.
 * Times are kept as the text restic writes (see formatGoTime), so trees read back re-encode
 * to the same bytes; 64-bit numbers that may pass 2^53 (inode, device ids) are bigints.
 */
export interface ResticNode {
  /** The name as text; for a name that is not valid UTF-8, its Go-escaped form (see rawName). */
  name: string;
  /** The name's bytes, only when they are not valid UTF-8. */
  rawName?: Buffer;
  type: NodeType | string;
  /** Go's os.FileMode: permission bits plus Go's own type and setuid/setgid/sticky bits (goFileMode). */
  mode?: number;
  mtime: string;
  atime: string;
  ctime: string;
  uid: number;
  gid: number;
  user?: string;
  group?: string;
  inode?: bigint;
  deviceId?: bigint;
  size?: number;
  links?: number;
  linkTarget?: string;
  /** A link target's bytes, only when they are not valid UTF-8 (restic 0.16+ writes them too). */
  linkTargetRaw?: Buffer;
  /** Kept as read (values base64) so that restic's trees pass through unchanged. */
  extendedAttributes?: { name: string; value: string }[];
  /** A device node's st_rdev. */
  device?: bigint;
  /** Data blob ids of a file, in order; null for anything else. */
  content: string[] | null;
  subtree?: string;
  error?: string;
}

/** Go's os.FileMode bits (io/fs). Bit 31 does not fit a signed int: these are plain numbers. */
export const GoMode = {
  dir: 2 ** 31,
  symlink: 2 ** 27,
  device: 2 ** 26,
  namedPipe: 2 ** 25,
  socket: 2 ** 24,
  setuid: 2 ** 23,
  setgid: 2 ** 22,
  charDevice: 2 ** 21,
  sticky: 2 ** 20,
  irregular: 2 ** 19,
} as const;

const S_IFMT = 0o170000;
const unixTypes: Record<number, number> = {
  0o060000: GoMode.device,
  0o020000: GoMode.device + GoMode.charDevice,
  0o040000: GoMode.dir,
  0o010000: GoMode.namedPipe,
  0o120000: GoMode.symlink,
  0o100000: 0,
  0o140000: GoMode.socket,
};

/** A Unix st_mode as Go's os.FileMode (what restic stores in `mode`). */
export function goFileMode(stMode: number): number {
  let mode = (stMode & 0o777) + (unixTypes[stMode & S_IFMT] ?? GoMode.irregular);
  if (stMode & 0o4000) mode += GoMode.setuid;
  if (stMode & 0o2000) mode += GoMode.setgid;
  if (stMode & 0o1000) mode += GoMode.sticky;
  return mode;
}

/** The Unix permission bits (with setuid, setgid, sticky) of a Go os.FileMode. */
export function unixPermissions(goMode: number): number {
  let mode = goMode % 0o1000;
  const high = Math.floor(goMode / 2 ** 19);
  if (high & (GoMode.setuid / 2 ** 19)) mode |= 0o4000;
  if (high & (GoMode.setgid / 2 ** 19)) mode |= 0o2000;
  if (high & (GoMode.sticky / 2 ** 19)) mode |= 0o1000;
  return mode;
}

function nodeType(st: BigIntStats): NodeType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'dev';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return 'irregular';
}

/**
 * The node restic makes for an lstat result (NodeFromFileInfo, fillExtra), with restic's
 * default of atime = mtime (its --with-atime is off): unchanged files give unchanged trees.
 * Extended attributes are not read (Node.js has no API for them).
 */
export function nodeFromStat(name: string, st: BigIntStats, linkTarget?: { text: string; raw?: Buffer }): ResticNode {
  const type = nodeType(st);
  const mtime = formatGoTime(st.mtimeNs);
  const node: ResticNode = {
    name,
    type,
    mode: goFileMode(Number(st.mode)),
    mtime,
    atime: mtime,
    ctime: formatGoTime(st.ctimeNs),
    uid: Number(st.uid),
    gid: Number(st.gid),
    content: null,
  };
  const user = userName(node.uid);
  const group = groupName(node.gid);
  if (user) node.user = user;
  if (group) node.group = group;
  node.inode = st.ino;
  node.deviceId = st.dev;
  if (type === 'file') {
    node.size = Number(st.size);
    node.links = Number(st.nlink);
    node.content = [];
  } else if (type === 'symlink') {
    node.links = Number(st.nlink);
    node.linkTarget = linkTarget?.text ?? '';
    if (linkTarget?.raw) node.linkTargetRaw = linkTarget.raw;
  } else if (type === 'dev' || type === 'chardev') {
    node.device = st.rdev;
    node.links = Number(st.nlink);
  }
  return node;
}
