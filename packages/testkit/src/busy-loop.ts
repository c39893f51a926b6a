// A worker thread that keeps one CPU busy until it is terminated (startCpuLoad).
for (;;) {
  // spin
}
