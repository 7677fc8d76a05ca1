"""An independent C2SP witness (tlog-witness, tlog-cosignature/v1) and the log's client for it.

cosigner.py   the witness's Ed25519 key (its own file, mode 0600) and cosignature lines
protocol.py   the add-checkpoint request body: parsing (witness side) and formatting (client side)
state.py      the witness directory: identity, trusted logs, last cosigned size/root/note per log,
              each written atomically (temp file, fsync, rename, fsync of the directory)
witness.py    the add-checkpoint decision: 404/403/400/409/422 or a cosignature, state persisted first
server.py     `custody witness serve`: stdlib HTTP server, one log line per request
client.py     `custody ledger checkpoint --witness`: ask witnesses, verify and keep their cosignatures
"""
