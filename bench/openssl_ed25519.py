"""This machine's OpenSSL Ed25519 speed: `openssl speed ed25519`, signs/s and verifies/s.

    python bench/openssl_ed25519.py [--seconds N] [--out bench/out/openssl_ed25519.json]

The floor under every signature figure in docs/benchmarks.md ("Signatures"): `cryptography`
calls the same OpenSSL, so its Ed25519 verification time is OpenSSL's, not Python overhead.
Runs `openssl speed ed25519` (10 s per operation by default, `--seconds` to shorten it), keeps
its output, and parses the result line (sign/s and verify/s).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

from _meta import stamp

REPO = Path(__file__).resolve().parents[1]
RESULT = re.compile(r"EdDSA \(Ed25519\)\s+([\d.]+)s\s+([\d.]+)s\s+([\d.]+)\s+([\d.]+)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, help="seconds per operation [openssl's default, 10]")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "openssl_ed25519.json")
    args = parser.parse_args()
    cmd = ["openssl", "speed", *(["-seconds", str(args.seconds)] if args.seconds else []), "ed25519"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    version = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=True).stdout.strip()
    match = RESULT.search(proc.stdout)
    if match is None:
        raise SystemExit(f"no Ed25519 result line in:\n{proc.stdout}")
    signs, verifies = float(match.group(3)), float(match.group(4))
    print(f"{version}: {signs:,.0f} signs/s ({1e6 / signs:.1f} µs), {verifies:,.0f} verifies/s", end="")
    print(f" ({1e6 / verifies:.1f} µs)")
    document = {
        "benchmark": "openssl speed ed25519",
        "openssl": version,
        "openssl_command": " ".join(cmd),
        "signs_per_s": signs,
        "verifies_per_s": verifies,
        "us_per_sign": 1e6 / signs,
        "us_per_verify": 1e6 / verifies,
        "output": proc.stdout.strip().splitlines()[-3:],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(stamp(document), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
