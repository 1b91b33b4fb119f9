"""The CSMS side below the public server: admission, the per-stream task, signals."""
