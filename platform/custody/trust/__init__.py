"""Who acted and with what right: people's SSH keys, SSHSIG entry signatures, the roster.

Floors, bottom up: `sshkeys` (OpenSSH key files and ssh-agent), `sshsig` (the signature wire
format), `permissions` (which role may cause which entry), `roster` (people and keys as the
ledger records them), `acting` (the key a command acts with), `audit` (re-checking every
signature of a ledger). Everything here imports only the ledger below it.
"""
