// Makes the quickstart's sample data: a small config tree and a SQLite database in WAL mode.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const here = path.dirname(fileURLToPath(import.meta.url));
const sample = path.join(here, 'work/sample');
rmSync(sample, { recursive: true, force: true });
mkdirSync(path.join(sample, 'config/agents'), { recursive: true });

writeFileSync(path.join(sample, 'config/.env'), 'OLLAMA_HOST=http://127.0.0.1:11434\nPOSTGRES_PASSWORD=change-me-please\nLOG_LEVEL=info\n');
writeFileSync(
  path.join(sample, 'config/agents/planner.json'),
  JSON.stringify({ name: 'planner', model: 'llama3', apiKey: 'sk-quickstart-demo-key', temperature: 0.2 }, null, 2) + '\n',
);
writeFileSync(path.join(sample, 'config/prometheus.yml'), 'global:\n  scrape_interval: 15s\n');
writeFileSync(path.join(sample, 'config/scratch.tmp'), 'left out by the exclude glob\n');

const db = new Database(path.join(sample, 'agents.db'));
db.pragma('journal_mode = WAL');
db.exec('CREATE TABLE agents (id INTEGER PRIMARY KEY, name TEXT NOT NULL, state TEXT)');
db.exec('CREATE TABLE events (id INTEGER PRIMARY KEY, agent INTEGER REFERENCES agents(id), at TEXT, message TEXT)');
const addAgent = db.prepare('INSERT INTO agents (name, state) VALUES (?, ?)');
const addEvent = db.prepare('INSERT INTO events (agent, at, message) VALUES (?, ?, ?)');
db.transaction(() => {
  for (const name of ['planner', 'coder', 'reviewer']) addAgent.run(name, 'idle');
  for (let i = 0; i < 500; i++) addEvent.run((i % 3) + 1, new Date(Date.UTC(2026, 10, 1) + i * 60_000).toISOString(), `event ${i}`);
})();
db.close();
console.log(`sample data written to ${path.relative(process.cwd(), sample) || sample}`);
