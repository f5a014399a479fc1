"""The bottom layer: the refusal catalogue (errors), request headers, request fields (the
query string, form and JSON bodies) and access checks (Host, token, cross-site writes).

Plain functions and classes on strings and bytes: nothing here knows the store, a command,
Flask or a server, and nothing here imports any other part of memflask but `limits`.
"""
