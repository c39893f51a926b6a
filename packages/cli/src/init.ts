/** The rc file `sutazai-backup init` writes: a working start that backs up one folder locally. */
export const STARTER_RC = `# sutazai-backup configuration. Docs: https://github.com/sutazai/sutazai-backup#the-rc-file
# Relative paths resolve from this file's folder. \${VAR} and \${VAR:-default} read the environment.
# Durations: a number and a unit (s, min, h, d, w, mo, y), e.g. 90min, 26h, 1y6mo; "m" alone is refused.
backupRoot: ./backups
compression: zstd

sources:
  configs:
    use: files
    paths: [./config]
    exclude: ["**/*.tmp", "**/node_modules"]
    redact: ["**/.env", "**/*secret*.yaml"]
  # agents:
  #   use: sqlite
  #   path: /opt/sutazaiapp/data/agents.db

# destinations:
#   drive: { use: local, path: /mnt/backup-drive/sutazai, requireMount: true }

profiles:
  daily:   { schedule: "0 2 * * *", sources: "*", retention: { daily: 7, weekly: 4, monthly: 12 } }

checks:
  maxAge: 26h
  maxStorageUsage: 85%
`;
