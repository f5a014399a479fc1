"""memflask's default limits, stated once: the settings' defaults (config.DEFAULTS), the
commands' context, snapshot checks, and the clients and framework backends that keep to
the server's limits. Imports nothing, so the light modules (clients, backends, the
snapshot format) can read it without Flask."""

KIB = 1024
MIB = 1024 * KIB

MAX_KEY_BYTES = 250  # the longest key, in UTF-8 bytes: memcached's
MAX_VALUE_BYTES = MIB  # the largest value, in UTF-8 bytes
MAX_BYTES = 64 * MIB  # what the items may take in memory in all (memory store)
MAX_BATCH = 1000  # commands per /batch, keys per /mget
# The largest /batch, /mget or /keys answer (JSON bytes): 16 MiB, room for two values of
# MAX_VALUE_BYTES at their worst JSON escaping (6 bytes a byte), or 15 plain ones.
MAX_ANSWER_BYTES = 16 * MIB
# Keys a /batch's scans (/keys pages, prefix flushes) may examine beyond one pass over
# the store: a /batch of 100 /keys pages of 1,000 keys, about 0.1 s of CPU here.
MAX_SCAN_KEYS = 1_000_000
# Leases and stale copies a memory store keeps at once (GET /get?lease=): past it, the
# oldest is let go (its holder's write then answers 412, as after another's write).
MAX_LEASES = 65_536
# The longest lease a reader may take, in seconds (memcached's N flag takes any).
MAX_LEASE_SECONDS = 3600
# The longest a written item is kept stale past its expiry (`stale`), in seconds: 30
# days, the longest relative expiry memcached takes.
MAX_STALE_SECONDS = 30 * 24 * 3600
