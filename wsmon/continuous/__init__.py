"""Continuous mode: the monitor, the probe scheduler, persistent connections and their ping
wheel, the store with its rolling windows, shards, the state file and push."""
