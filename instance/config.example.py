# Copy to instance/config.py. Every name here can also be set as MEMFLASK_<NAME> in the environment.
HOST = "127.0.0.1"
PORT = 8000
SIZE = 0  # most keys held, 0 = no cap
MAX_BYTES = 64 * 1024 * 1024  # keys + values held, 0 = no cap
MAX_VALUE_BYTES = 1024 * 1024
