"""The servers memflask runs on, each in its own module, imported only by its entry points
(`python -m memflask`, `memflask serve`, `wsgi.py`): waitress (`waitress`, with its bounded
connection in `waitress_channel`) and granian (`granian`), and what they share (the
connection limit fitted to the open files, `fd_limits`)."""
