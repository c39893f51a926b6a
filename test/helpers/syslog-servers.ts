/**
 * Receivers for the syslog notifier. Node cannot open unix datagram sockets, so the plain
 * receiver is a few lines of Python (every datagram, byte for byte), and the syslog daemon is
 * Debian's rsyslogd, run in the foreground with a config of its own, on a socket of its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';

async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await check();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const closed = new Promise((r) => child.once('close', r));
  child.kill('SIGTERM');
  await closed;
}

export interface DatagramReceiver {
  socket: string;
  /** Every datagram received, decoded as UTF-8. */
  datagrams: string[];
  waitFor(count: number): Promise<string[]>;
  stop(): Promise<void>;
}

const RECEIVER = `
import base64, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
while True:
    data = s.recv(65536)
    print(base64.b64encode(data).decode(), flush=True)
`;

/** A unix datagram socket at `socket` that records what arrives. */
export async function startDatagramReceiver(socket: string): Promise<DatagramReceiver> {
  const child = spawn('python3', ['-c', RECEIVER, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
  const datagrams: string[] = [];
  let ready = false;
  let buffered = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buffered += d;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      if (line === 'ready') ready = true;
      else if (line) datagrams.push(Buffer.from(line, 'base64').toString('utf8'));
    }
  });
  await until('the datagram receiver', () => (ready ? true : undefined));
  return {
    socket,
    datagrams,
    waitFor: (count) => until(`${count} datagram(s)`, () => (datagrams.length >= count ? datagrams : undefined)),
    stop: async () => {
      await stopChild(child);
      await fsp.rm(socket, { force: true });
    },
  };
}

/** A message as rsyslog parsed it. */
export interface SyslogEntry {
  pri: number;
  severity: string;
  facility: string;
  app: string;
  procid: string;
  msgid: string;
  msg: string;
}

export interface Rsyslog {
  socket: string;
  entries(): Promise<SyslogEntry[]>;
  waitFor(count: number): Promise<SyslogEntry[]>;
  stop(): Promise<void>;
}

/** rsyslogd in the foreground, its input a socket in `dir`, its output a file in `dir` with the parsed fields. */
export async function startRsyslog(dir: string): Promise<Rsyslog> {
  const socket = path.join(dir, 'log.sock');
  const out = path.join(dir, 'messages.log');
  const conf = path.join(dir, 'rsyslog.conf');
  await fsp.writeFile(
    conf,
    `global(workDirectory="${dir}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="${socket}" UseSpecialParser="off" ParseHostname="on" UsePIDFromSystem="off")
template(name="fields" type="string" string="%pri%|%syslogseverity-text%|%syslogfacility-text%|%app-name%|%procid%|%msgid%|%msg%\\n")
*.* action(type="omfile" file="${out}" template="fields")
`,
  );
  const child = spawn('rsyslogd', ['-n', '-f', conf, '-i', path.join(dir, 'rsyslogd.pid')], { stdio: ['ignore', 'inherit', 'inherit'] });
  await until('rsyslogd to open its socket', () => (existsSync(socket) ? true : undefined));
  const entries = async (): Promise<SyslogEntry[]> =>
    (await fsp.readFile(out, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [pri, severity, facility, app, procid, msgid, ...msg] = line.split('|');
        return { pri: Number(pri), severity: severity!, facility: facility!, app: app!, procid: procid!, msgid: msgid!, msg: msg.join('|').trim() };
      });
  return {
    socket,
    entries,
    waitFor: async (count) => until(`${count} message(s) from rsyslogd`, async () => ((await entries()).length >= count ? entries() : undefined)),
    stop: () => stopChild(child),
  };
}
