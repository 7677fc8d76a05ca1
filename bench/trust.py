"""Signatures benchmark: what signing every entry costs per action, per append and per full verification.

    python bench/trust.py [--entries 1000000] [--out docs/figures/trust_bench.json]

On this machine, in one run, each figure beside its peer measured in the same run (as a ratio):
  1. per person action: signing one entry (make_entry with a person's key through
     custody.trust.sshsig) and checking one (audit.entry_problem: roster lookup, role, SSHSIG verify;
     and the bare sshsig.verify), beside `ssh-keygen -Y sign` / `-Y verify` (one subprocess per call,
     the peer people already use) and a bare Ed25519 sign/verify from `cryptography` (the floor);
  2. admission: Home.record of a person-signed note (sign, admit under the writer lock, append), one
     commit each and in batches (Home.append), beside unsigned make_entry + Ledger.append_batch; and
     Home.record again with `--roster` people on the roster;
  3. full verification of a ledger of `--entries` signed entries (Ledger.verify for the Merkle tree,
     then audit.verify_signatures with 1 and 2 worker processes), beside Ledger.verify of an unsigned
     ledger with the same entries, built in the same run;
  4. where the time of verify_signatures goes, component by component, over `--profile-rows` entries.
Results go to `--out` (JSON) and the printed table also to the same path with a .txt suffix.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import io
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from _meta import cpu_model, load_average, log, stamp
from custody.checks import entry_types as _check_types  # noqa: F401  registers check.completed/v1
from custody.home import Home
from custody.ledger.entry import Entry, make_entry, signed_bytes
from custody.ledger.log import Ledger
from custody.ledger.signing import generate_key_file, load_signer
from custody.ledger.storage import Storage, open_storage
from custody.runs import entry_types as _run_types  # noqa: F401  registers run.checkpoint/v1
from custody.trust import audit, sshsig
from custody.trust.acting import Person
from custody.trust.roster import Roster
from custody.trust.sshkeys import KeySigner, generate_key

TARGET_ACTION_US = 1_000  # signing or checking one person's action: under 1 ms
TARGET_FULL_VERIFY_S = 60  # ledger.md: full verification of 1M entries "in seconds, not minutes"
PUBLISHED_UNSIGNED_VERIFY_S = 16.1  # docs/figures/ledger_bench.json, SQLite, 1M unsigned entries (another run)
PEOPLE = (  # who is on the benchmark home's roster besides the admin
    ("ada", ("engineer",)),
    ("grace", ("reviewer",)),
    ("alan", ("approver",)),
    ("edsger", ("engineer", "reviewer")),
    ("barbara", ("engineer",)),
)


@dataclass
class Figure:
    section: str
    metric: str
    value: float
    unit: str  # µs | /s | s | x
    target: str = ""
    met: bool | None = None
    compare: dict[str, float] = field(default_factory=dict)  # what it is compared with -> ours / theirs
    detail: str = ""
    p99: float | None = None
    samples: int | None = None


def quantiles_us(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    return statistics.median(ordered) / 1000, ordered[max(int(len(ordered) * 0.99) - 1, 0)] / 1000


def timed_calls(call: Callable[[int], object], count: int) -> list[int]:
    """Per-call wall time in ns; gc left on (a real caller has it), collected before starting."""
    gc.collect()
    samples = []
    for i in range(count):
        t0 = time.perf_counter_ns()
        call(i)
        samples.append(time.perf_counter_ns() - t0)
    return samples


# -- entries ---------------------------------------------------------------------------------


def note_body(i: int) -> dict:
    return {"text": f"benchmark note {i}: reviewed shard {i % 4096:04d} of dataset web@{i % 97}"}


def digest(i: int, salt: int) -> str:
    return f"{(i * 2654435761 + salt * 40503) % 2**256:064x}"


def mixed_entry(i: int, people: list[Person], service: Callable[[bytes], bytes] | None, signed: bool) -> Entry:
    """A realistic mix of what a home accumulates, ~500-700 bytes before the signature:
    30% notes people sign, 40% check results and 30% training checkpoints the service signs
    (checkpoints carry floats, so their canonical JSON takes rfc8785's slow path)."""
    person = people[i % len(people)]
    kind = i % 10
    if kind < 3:
        return make_entry(
            "ledger.note/v1", person.name, f"dataset:web@{i % 97}", note_body(i), sign=person.sign if signed else None
        )
    sign = service if signed else None
    if kind < 7:
        body = {
            "check": ("pii", "license", "toxicity", "provenance")[i % 4],
            "version": "1.0.0",
            "dataset": f"web@{i % 97}",
            "dataset_digest": digest(i, 1),
            "config_digest": digest(i % 13, 2),
            "result_digest": digest(i, 3),
            "summary_digest": digest(i, 4),
            "records": 1000 + i % 5000,
            "verdicts": {"pass": 990 + i % 7, "flag": i % 11},
            "status": "pass" if i % 11 == 0 else "flag",
        }
        return make_entry("check.completed/v1", person.name, f"dataset:web@{i % 97}", body, sign=sign)
    step = i // 10
    body = {
        "run_id": f"run-{i % 5}",
        "step": step,
        "checkpoint_digest": digest(i, 5),
        "tokens": step * 4096,
        "train_loss": round(2.0 + 3.0 / (1 + step % 1000), 4),
    }
    if step % 10 == 0:
        body["val_loss"] = round(2.1 + 3.0 / (1 + step % 1000), 4)
    return make_entry("run.checkpoint/v1", person.name, f"run:run-{i % 5}", body, sign=sign)


def make_home(path: Path) -> tuple[Home, Person, list[Person], Path]:
    """A signed home: an admin, then the PEOPLE added by the admin (each a people.added entry)."""
    keys = path.parent / f"{path.name}-keys"
    admin_signer = generate_key(keys / "admin", "admin")
    home = Home.init(path, admin=("admin", admin_signer.public))
    admin = Person("admin", admin_signer, frozenset({"admin"}))
    people = []
    for name, roles in PEOPLE:
        signer = generate_key(keys / name, name)
        body = {"name": name, "key": signer.public.openssh, "fingerprint": signer.public.fingerprint, "roles": roles}
        home.record("people.added/v1", f"person:{name}", body, actor=admin)
        people.append(Person(name, signer, frozenset(roles)))
    return home, admin, people, keys


def service_sign(home: Home) -> Callable[[bytes], bytes]:
    service = home.service_signer()
    return lambda message: sshsig.sign(service, message)


# -- 1. per person action ----------------------------------------------------------------------


def per_action(tmp: Path, args: argparse.Namespace) -> list[Figure]:
    home, _, people, keys = make_home(tmp / "actions")
    ada = people[0]
    assert isinstance(ada.signer, KeySigner)
    n = args.samples
    section = "per action"
    figures: list[Figure] = []

    unsigned_ns = timed_calls(lambda i: make_entry("ledger.note/v1", "ada", "dataset:web@1", note_body(i)), n)
    entries: list[Entry] = []
    signed_ns = timed_calls(
        lambda i: entries.append(make_entry("ledger.note/v1", "ada", "dataset:web@1", note_body(i), sign=ada.sign)), n
    )
    messages = [e.signed_bytes for e in entries]
    blobs = [base64.b64decode(e.sig or "") for e in entries]
    docs = [e.as_dict() for e in entries]
    bare_sign_ns = timed_calls(lambda i: sshsig.sign(ada.signer, messages[i]), n)
    # The floor: one Ed25519 signature over the same bytes SSHSIG signs (its framed sha512 digest).
    raw_key: Ed25519PrivateKey = ada.signer._key
    framed = [sshsig.signed_data(m) for m in messages]
    floor_sign_ns = timed_calls(lambda i: raw_key.sign(framed[i]), n)

    roster = home.roster()
    index = home.ledger.size  # the index the next entry would get
    assert all(audit.entry_problem(index, d, roster) is None for d in docs[:10])
    check_ns = timed_calls(lambda i: audit.entry_problem(index, docs[i], roster), n)
    bare_verify_ns = timed_calls(lambda i: sshsig.verify(blobs[i], messages[i]), n)
    public = raw_key.public_key()
    raw_sigs = [sshsig.parse(b).signature for b in blobs]
    floor_verify_ns = timed_calls(lambda i: public.verify(raw_sigs[i], framed[i]), n)

    # The peer: ssh-keygen, one process per signature, as `git commit -S` and `ssh-keygen -Y` users pay.
    peer: dict[str, tuple[float, float]] = {}
    if shutil.which("ssh-keygen"):
        peer = ssh_keygen_peer(tmp, keys / "ada", ada, messages, blobs, args.ssh_samples)
    else:
        log("ssh-keygen not found: no peer figures")

    sign_floor, _ = quantiles_us(floor_sign_ns)
    verify_floor, _ = quantiles_us(floor_verify_ns)
    unsigned_med, _ = quantiles_us(unsigned_ns)

    def fig(metric: str, samples: list[int], compare: dict[str, float], detail: str = "", target: bool = True) -> None:
        median, p99 = quantiles_us(samples)
        figures.append(
            Figure(
                section,
                metric,
                median,
                "µs",
                target=f"< {TARGET_ACTION_US:,} µs" if target else "",
                met=(median < TARGET_ACTION_US) if target else None,
                compare={name: median / theirs for name, theirs in compare.items()},
                detail=f"median of {len(samples):,}, p99 {p99:,.1f} µs" + (f"; {detail}" if detail else ""),
                p99=p99,
                samples=len(samples),
            )
        )

    peer_sign = {"ssh-keygen -Y sign": peer["sign"][0]} if peer else {}
    peer_verify = {"ssh-keygen -Y verify": peer["verify"][0]} if peer else {}
    signed_med, _ = quantiles_us(signed_ns)
    fig(
        "sign: make_entry(sign=person) of a note",
        signed_ns,
        {**peer_sign, "Ed25519 sign (floor)": sign_floor, "unsigned make_entry": unsigned_med},
        f"{signed_med - unsigned_med:,.1f} µs more than the unsigned make_entry "
        "(canonical JSON twice, SSHSIG framing, sha512, Ed25519, base64)",
    )
    fig("sign: bare sshsig.sign over the envelope", bare_sign_ns, {**peer_sign, "Ed25519 sign (floor)": sign_floor})
    fig(
        "check: audit.entry_problem (roster, role, SSHSIG)",
        check_ns,
        {**peer_verify, "Ed25519 verify (floor)": verify_floor},
        "envelope already decoded; classify() parses the SSHSIG, signature_problem() parses it again "
        "and re-encodes the envelope",
    )
    fig("check: bare sshsig.verify", bare_verify_ns, {**peer_verify, "Ed25519 verify (floor)": verify_floor})
    fig("unsigned make_entry (reference)", unsigned_ns, {}, "pydantic validation + canonical JSON", target=False)
    fig("Ed25519 sign, cryptography (floor)", floor_sign_ns, {}, "over SSHSIG's framed sha512 digest", target=False)
    fig("Ed25519 verify, cryptography (floor)", floor_verify_ns, {}, target=False)
    if peer:
        for what in ("sign", "verify"):
            median, p99 = peer[what]
            figures.append(
                Figure(
                    section,
                    f"peer: ssh-keygen -Y {what} (a process per call)",
                    median,
                    "µs",
                    detail=f"median of {args.ssh_samples:,}, p99 {p99:,.0f} µs; fork + exec + key load included; "
                    "its signatures and ours verify with each other (checked)",
                    p99=p99,
                    samples=args.ssh_samples,
                )
            )
    home.close()
    return figures


def ssh_keygen_peer(
    tmp: Path, key: Path, person: Person, messages: list[bytes], blobs: list[bytes], count: int
) -> dict[str, tuple[float, float]]:
    """Median and p99 (µs) of `ssh-keygen -Y sign` and `-Y verify`, one subprocess per message."""
    work = tmp / "ssh-keygen"
    work.mkdir()
    allowed = work / "allowed_signers"
    allowed.write_text(f'{person.name} namespaces="custody" {person.signer.public.openssh}\n')
    sign_ns, verify_ns = [], []
    for i in range(count):
        message = messages[i % len(messages)]
        t0 = time.perf_counter_ns()
        done = subprocess.run(
            ["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", "custody"], input=message, capture_output=True
        )
        sign_ns.append(time.perf_counter_ns() - t0)
        if done.returncode:
            raise SystemExit(f"ssh-keygen -Y sign failed: {done.stderr.decode(errors='replace')}")
        if i == 0:  # interop: ssh-keygen's signature verifies with ours
            sshsig.verify(sshsig.dearmor(done.stdout.decode()), message)
        sig_file = work / "entry.sig"
        sig_file.write_text(sshsig.armor(blobs[i % len(blobs)]))  # ours, checked by ssh-keygen
        t0 = time.perf_counter_ns()
        done = subprocess.run(
            ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", person.name, "-n", "custody", "-s", str(sig_file)],
            input=message,
            capture_output=True,
        )
        verify_ns.append(time.perf_counter_ns() - t0)
        if done.returncode:
            raise SystemExit(f"ssh-keygen -Y verify refused our signature: {done.stderr.decode(errors='replace')}")
    return {"sign": quantiles_us(sign_ns), "verify": quantiles_us(verify_ns)}


# -- 2. admission ----------------------------------------------------------------------------


def admission(tmp: Path, args: argparse.Namespace) -> list[Figure]:
    """Signed appends through the home vs unsigned ones on a plain ledger, interleaved so that the
    machine's other load falls on both alike."""
    home, admin, people, _ = make_home(tmp / "admission")
    ada = people[0]
    plain = Ledger(open_storage(f"sqlite:///{tmp / 'admission-unsigned.sqlite'}", create=True), "custody.bench/trust")
    section = "admission"
    figures: list[Figure] = []

    signed_ns, unsigned_ns = [], []
    gc.collect()
    for i in range(args.single):
        t0 = time.perf_counter_ns()
        home.record("ledger.note/v1", f"dataset:web@{i % 97}", note_body(i), actor=ada)
        t1 = time.perf_counter_ns()
        plain.append_batch([make_entry("ledger.note/v1", "ada", f"dataset:web@{i % 97}", note_body(i))])
        t2 = time.perf_counter_ns()
        signed_ns.append(t1 - t0)
        unsigned_ns.append(t2 - t1)
    s_med, s_p99 = quantiles_us(signed_ns)
    u_med, u_p99 = quantiles_us(unsigned_ns)
    s_rate, u_rate = len(signed_ns) / (sum(signed_ns) / 1e9), len(unsigned_ns) / (sum(unsigned_ns) / 1e9)
    figures.append(
        Figure(
            section,
            "Home.record latency: a person's note, signed, admitted, committed",
            s_med,
            "µs",
            target=f"< {TARGET_ACTION_US:,} µs",
            met=s_med < TARGET_ACTION_US,
            compare={"unsigned make_entry + append_batch([e])": s_med / u_med},
            detail=f"median of {len(signed_ns):,}, p99 {s_p99:,.0f} µs; unsigned median {u_med:,.0f} µs",
            p99=s_p99,
            samples=len(signed_ns),
        )
    )
    figures.append(
        Figure(
            section,
            f"Home.record, person-signed note, a commit each (x{args.single:,})",
            s_rate,
            "/s",
            compare={"unsigned make_entry + append_batch([e])": s_rate / u_rate},
            detail=f"median {s_med:,.0f} µs, p99 {s_p99:,.0f} µs per record (sign + roster refresh + admit under "
            f"the writer lock + append); unsigned: {u_rate:,.0f}/s, median {u_med:,.0f} µs, p99 {u_p99:,.0f} µs",
            p99=s_p99,
            samples=len(signed_ns),
        )
    )

    # Batches: build (sign) and append timed apart; a third variant appends signed entries without
    # admission (Ledger.append_batch on the home's ledger) to show what admission itself costs.
    times = {k: 0.0 for k in ("s_build", "s_append", "raw_build", "raw_append", "u_build", "u_append")}
    base = args.single
    for b in range(args.batches):
        lo = base + 3 * b * args.batch
        t0 = time.perf_counter()
        batch = [
            home.entry("ledger.note/v1", f"dataset:web@{i % 97}", note_body(i), actor=ada)
            for i in range(lo, lo + args.batch)
        ]
        t1 = time.perf_counter()
        home.append(batch)
        t2 = time.perf_counter()
        raw = [
            make_entry("ledger.note/v1", "ada", f"dataset:web@{i % 97}", note_body(i), sign=ada.sign)
            for i in range(lo + args.batch, lo + 2 * args.batch)
        ]
        t3 = time.perf_counter()
        home.ledger.append_batch(raw)
        t4 = time.perf_counter()
        plain_batch = [
            make_entry("ledger.note/v1", "ada", f"dataset:web@{i % 97}", note_body(i))
            for i in range(lo + 2 * args.batch, lo + 3 * args.batch)
        ]
        t5 = time.perf_counter()
        plain.append_batch(plain_batch)
        t6 = time.perf_counter()
        for key, span in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True):
            times[key] += span
    count = args.batch * args.batches
    rate = {k: count / v for k, v in times.items()}
    e2e_signed = count / (times["s_build"] + times["s_append"])
    e2e_unsigned = count / (times["u_build"] + times["u_append"])
    per_admit_us = (times["s_append"] - times["raw_append"]) / count * 1e6
    figures.append(
        Figure(
            section,
            f"Home.append, {args.batch:,} person-signed notes per batch (admission included)",
            rate["s_append"],
            "/s",
            compare={"unsigned Ledger.append_batch": rate["s_append"] / rate["u_append"]},
            detail=f"{count:,} entries in {args.batches} batches; the same signed entries appended without "
            f"admission: {rate['raw_append']:,.0f}/s, so admission costs ~{per_admit_us:,.0f} µs per entry; "
            f"unsigned append_batch: {rate['u_append']:,.0f}/s",
        )
    )
    figures.append(
        Figure(
            section,
            "building those entries: Home.entry(actor=person), signed",
            rate["s_build"],
            "/s",
            compare={"unsigned make_entry": rate["s_build"] / rate["u_build"]},
            detail=f"make_entry(sign=person.sign) without Home.entry's roster refresh: {rate['raw_build']:,.0f}/s; "
            f"unsigned make_entry: {rate['u_build']:,.0f}/s",
        )
    )
    figures.append(
        Figure(
            section,
            "end to end: sign + Home.append, batched",
            e2e_signed,
            "/s",
            compare={"unsigned make_entry + append_batch": e2e_signed / e2e_unsigned},
            detail=f"unsigned end to end: {e2e_unsigned:,.0f}/s",
        )
    )

    # The same record with a bigger roster: admission copies the roster under the writer lock.
    members = len(home.roster().members)
    for k in range(members, args.roster):
        signer = KeySigner(Ed25519PrivateKey.generate(), f"bench person {k}")
        body = {"name": f"p{k}", "key": signer.public.openssh, "fingerprint": signer.public.fingerprint}
        home.record("people.added/v1", f"person:p{k}", body | {"roles": ["engineer"]}, actor=admin)
    big_ns = timed_calls(
        lambda i: home.record("ledger.note/v1", f"dataset:web@{i % 97}", note_body(i), actor=ada), args.single // 4
    )
    b_med, b_p99 = quantiles_us(big_ns)
    figures.append(
        Figure(
            section,
            f"Home.record latency, {len(home.roster().members)} people on the roster",
            b_med,
            "µs",
            target=f"< {TARGET_ACTION_US:,} µs",
            met=b_med < TARGET_ACTION_US,
            compare={f"{members} people on the roster": b_med / s_med, "unsigned": b_med / u_med},
            detail=f"median of {len(big_ns):,}, p99 {b_p99:,.0f} µs; the roster is read once per home and "
            "copied only for a batch that changes it",
            p99=b_p99,
            samples=len(big_ns),
        )
    )
    home.close()
    plain.storage.close()
    return figures


# -- 3. full verification --------------------------------------------------------------------


def load_ledgers(tmp: Path, args: argparse.Namespace, notes: list[str]) -> dict:
    """The signed home and the unsigned ledger, the same mix of entries, in batches of --build-batch."""
    home, _, people, _ = make_home(tmp / "signed")
    service = service_sign(home)
    start = home.ledger.size  # the init entry and the people added
    timing = {"sign_build": 0.0, "admit_append": 0.0, "plain_build": 0.0, "plain_append": 0.0}
    admitted = args.admission == "home"
    if not admitted:
        notes.append(
            "the signed ledger was loaded with Ledger.append_batch, without Home.append's admission "
            "(--admission ledger); admission is measured in the admission section"
        )
    wall = time.perf_counter()
    for lo in range(start, args.entries, args.build_batch):
        hi = min(lo + args.build_batch, args.entries)
        t0 = time.perf_counter()
        batch = [mixed_entry(i, people, service, signed=True) for i in range(lo, hi)]
        t1 = time.perf_counter()
        if admitted:
            home.append(batch)
        else:
            home.ledger.append_batch(batch)
        timing["sign_build"] += t1 - t0
        timing["admit_append"] += time.perf_counter() - t1
        if hi // 100_000 != lo // 100_000:
            log(f"signed: {hi:,} entries, {hi / (time.perf_counter() - wall):,.0f}/s so far")
    timing["signed_wall"] = time.perf_counter() - wall
    home.checkpoint()

    key_path = tmp / "unsigned-keys" / "ledger.key"
    generate_key_file(key_path)
    plain = Ledger(open_storage(f"sqlite:///{tmp / 'unsigned.sqlite'}", create=True), "custody.bench/trust")
    wall = time.perf_counter()
    for lo in range(0, args.entries, args.build_batch):
        hi = min(lo + args.build_batch, args.entries)
        t0 = time.perf_counter()
        batch = [mixed_entry(i, people, None, signed=False) for i in range(lo, hi)]
        t1 = time.perf_counter()
        plain.append_batch(batch)
        timing["plain_build"] += t1 - t0
        timing["plain_append"] += time.perf_counter() - t1
        if hi // 100_000 != lo // 100_000:
            log(f"unsigned: {hi:,} entries, {hi / (time.perf_counter() - wall):,.0f}/s so far")
    timing["plain_wall"] = time.perf_counter() - wall
    signer = load_signer(key_path, plain.origin)
    return {"home": home, "plain": plain, "plain_signer": signer, "timing": timing, "start": start}


def cpu_now() -> float:
    """CPU seconds of this process and of its reaped children (verify_signatures' worker processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def full_verification(tmp: Path, args: argparse.Namespace, notes: list[str]) -> tuple[list[Figure], dict]:
    section = "full verification"
    built = load_ledgers(tmp, args, notes)
    home: Home = built["home"]
    plain: Ledger = built["plain"]
    t = built["timing"]
    size = home.ledger.size
    assert size == plain.size == args.entries, (size, plain.size)
    figures: list[Figure] = []
    n_signed = size - built["start"]

    def published(seconds: float) -> dict[str, float]:
        # Only at the published figure's own size: another run, smaller entries, orientation only.
        return (
            {"published unsigned 1M, another run": seconds / PUBLISHED_UNSIGNED_VERIFY_S} if size == 1_000_000 else {}
        )

    figures.append(
        Figure(
            section,
            "load: sign (make_entry with sign=) of the mix",
            n_signed / t["sign_build"],
            "/s",
            compare={"unsigned make_entry": (n_signed / t["sign_build"]) / (size / t["plain_build"])},
            detail=f"{n_signed:,} in {t['sign_build']:,.1f} s; unsigned {size:,} in {t['plain_build']:,.1f} s",
        )
    )
    label = "Home.append (admission + append)" if args.admission == "home" else "Ledger.append_batch (no admission)"
    figures.append(
        Figure(
            section,
            f"load: {label}, {args.build_batch:,} per batch",
            n_signed / t["admit_append"],
            "/s",
            compare={"unsigned append_batch": (n_signed / t["admit_append"]) / (size / t["plain_append"])},
            detail=f"{t['admit_append']:,.1f} s; unsigned {t['plain_append']:,.1f} s",
        )
    )
    figures.append(
        Figure(
            section,
            "load: end to end",
            n_signed / t["signed_wall"],
            "/s",
            compare={"unsigned end to end": (n_signed / t["signed_wall"]) / (size / t["plain_wall"])},
            detail=f"{t['signed_wall']:,.1f} s wall; unsigned {t['plain_wall']:,.1f} s",
        )
    )

    # Unsigned first, then signed: the same order the reader compares them in.
    load_before = load_average()
    note = plain.sign_checkpoint(built["plain_signer"])
    t0, c0 = time.perf_counter(), cpu_now()
    report = plain.verify(built["plain_signer"].verifier_key, remembered=note)
    plain_s, plain_cpu = time.perf_counter() - t0, cpu_now() - c0
    if not report.ok:
        raise SystemExit(f"unsigned ledger: verification failed: {report.first_problem()}")
    log(f"unsigned Ledger.verify: {plain_s:,.1f} s")

    t0, c0 = time.perf_counter(), cpu_now()
    report = home.ledger.verify(home.verifier_key, remembered=home.witness.remembered())
    merkle_s, merkle_cpu = time.perf_counter() - t0, cpu_now() - c0
    if not report.ok:
        raise SystemExit(f"signed ledger: verification failed: {report.first_problem()}")
    log(f"signed Ledger.verify: {merkle_s:,.1f} s")

    sig_runs: dict[int, tuple[float, float, audit.SignatureReport]] = {}
    for workers in (1, 2):
        t0, c0 = time.perf_counter(), cpu_now()
        sig_report = audit.verify_signatures(home.storage, workers=workers)
        sig_runs[workers] = (time.perf_counter() - t0, cpu_now() - c0, sig_report)
        if not sig_report.ok or sig_report.entries != size:
            raise SystemExit(f"verify_signatures failed: {sig_report.problems[:3]} ({sig_report.entries} entries)")
        log(f"verify_signatures(workers={workers}): {sig_runs[workers][0]:,.1f} s")
    load_after = load_average()

    figures.append(
        Figure(
            section,
            f"unsigned: Ledger.verify ({size:,} entries)",
            plain_s,
            "s",
            target=f"< {TARGET_FULL_VERIFY_S} s",
            met=plain_s < TARGET_FULL_VERIFY_S,
            compare=published(plain_s),
            detail=f"{size / plain_s:,.0f} entries/s, {plain_cpu:,.1f} CPU-s; same mix as the signed ledger, "
            "without sig (bench/ledger.py's entries are smaller: ~250 bytes)",
        )
    )
    figures.append(
        Figure(
            section,
            "signed: Ledger.verify (Merkle part)",
            merkle_s,
            "s",
            compare={"unsigned Ledger.verify": merkle_s / plain_s},
            detail=f"{size / merkle_s:,.0f} entries/s, {merkle_cpu:,.1f} CPU-s; entries carry a ~240-byte sig",
        )
    )
    by_kind = sig_runs[1][2].by_kind
    for workers, (sig_s, sig_cpu, _) in sig_runs.items():
        figures.append(
            Figure(
                section,
                f"signed: verify_signatures(workers={workers})",
                sig_s,
                "s",
                compare={"unsigned Ledger.verify": sig_s / plain_s}
                | ({"workers=1": sig_s / sig_runs[1][0]} if workers > 1 else {}),
                detail=f"{size / sig_s:,.0f} entries/s; {sig_cpu:,.1f} CPU-s incl. worker processes "
                f"({sig_s / size * 1e6:,.1f} µs wall per entry); signers: "
                + ", ".join(f"{k} {v:,}" for k, v in sorted(by_kind.items())),
            )
        )
    for workers, (sig_s, _, _) in sig_runs.items():
        total = merkle_s + sig_s
        figures.append(
            Figure(
                section,
                f"signed: full verification, Merkle + signatures (workers={workers})",
                total,
                "s",
                target=f"< {TARGET_FULL_VERIFY_S} s",
                met=total < TARGET_FULL_VERIFY_S,
                compare={"unsigned Ledger.verify": total / plain_s} | published(total),
                detail=f"{merkle_s:,.1f} s + {sig_s:,.1f} s, one after the other, as `custody ledger verify` runs them",
            )
        )
    sizes = {
        "signed": sqlite_bytes(home.database_url),
        "unsigned": sqlite_bytes(f"sqlite:///{tmp / 'unsigned.sqlite'}"),
    }
    extra = {
        "entries": size,
        "bytes_on_disk": sizes,
        "by_kind": by_kind,
        "load_average": {"before_verification": load_before, "after_verification": load_after},
        "seconds": {
            "unsigned_merkle": plain_s,
            "signed_merkle": merkle_s,
            **{f"signatures_workers_{w}": r[0] for w, r in sig_runs.items()},
            **t,
        },
    }
    profile = profile_signatures(home.storage, args.profile_rows)
    plain.storage.close()
    home.close()
    return figures, {**extra, "profile": profile}


def sqlite_bytes(url: str) -> int:
    path = Path(url.removeprefix("sqlite:///"))
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


# -- 4. where verify_signatures spends its time --------------------------------------------------


def profile_signatures(storage: Storage, rows_wanted: int) -> dict:
    """Each step of verify_signatures(workers=1) timed on its own over the first `rows_wanted` entries.

    The steps are the ones audit.py runs per entry: the walk in index order (reading rows; only
    roster entries are decoded there) and, in the workers, _check_chunk: json.loads, classify (roster,
    role, SSHSIG parse), then signature_problem (base64, canonical re-encoding of the envelope
    without sig, SSHSIG parse again, framing + sha512, Ed25519)."""
    rows = []
    t0 = time.perf_counter()
    for row in storage.iter_entries():
        rows.append(row)
        if len(rows) >= rows_wanted:
            break
    read_s = time.perf_counter() - t0
    n = len(rows)
    raws = [r.entry for r in rows]
    steps: dict[str, float] = {"read rows (SQLite iter_entries)": read_s}

    def step(name: str, fn: Callable[[], object]) -> object:
        gc.collect()
        t = time.perf_counter()
        out = fn()
        steps[name] = time.perf_counter() - t
        return out

    docs = step("json.loads (worker)", lambda: [json.loads(r) for r in raws])
    roster = Roster()
    roster.apply(0, docs[0])

    def classify_all() -> None:
        for i, doc in enumerate(docs):
            if i:
                audit.classify(i, doc, roster)
                roster.apply(i, doc)

    step("classify: roster + role + SSHSIG parse (worker)", classify_all)
    blobs = step("base64 decode of sig", lambda: [base64.b64decode(d["sig"], validate=True) for d in docs])
    messages = step("canonical re-encoding without sig", lambda: [signed_bytes(d) for d in docs])
    parsed = step("SSHSIG parse (again)", lambda: [sshsig.parse(b) for b in blobs])
    framed = step(
        "framing + sha512 of the message",
        lambda: [sshsig.signed_data(m, p.namespace, p.hash_algorithm) for m, p in zip(messages, parsed, strict=True)],
    )
    verifiers = step("Ed25519PublicKey.from_public_bytes", lambda: [p.public.verifier() for p in parsed])
    step(
        "Ed25519 verify",
        lambda: [v.verify(p.signature, f) for v, p, f in zip(verifiers, parsed, framed, strict=True)],
    )
    step("whole _check_chunk (the workers' part)", lambda: audit._check_chunk((roster, list(enumerate(raws)))))
    by_type: dict[str, list[float]] = {}
    for doc in docs:  # the re-encoding per type: floats send run.checkpoint through rfc8785
        t = time.perf_counter_ns()
        signed_bytes(doc)
        by_type.setdefault(doc["type"], []).append(time.perf_counter_ns() - t)
    whole = steps.pop("whole _check_chunk (the workers' part)")
    total = sum(steps.values())
    return {
        "rows": n,
        "us_per_entry": {k: v / n * 1e6 for k, v in steps.items()},
        "share": {k: v / total for k, v in steps.items()},
        "sum_of_steps_us_per_entry": total / n * 1e6,
        "verify_chunk_us_per_entry": whole / n * 1e6,
        "canonical_us_by_type": {k: statistics.median(v) / 1000 for k, v in sorted(by_type.items())},
        "entries_by_type": {k: len(v) for k, v in sorted(by_type.items())},
    }


# -- output ----------------------------------------------------------------------------------


def fmt_value(f: Figure) -> str:
    if f.unit == "/s":
        return f"{f.value:,.0f} /s"
    if f.unit == "µs":
        return f"{f.value:,.1f} µs"
    return f"{f.value:,.1f} s"


def fmt_compare(f: Figure) -> str:
    return ", ".join(f"{ratio:,.2f}x {name}" for name, ratio in f.compare.items())


def print_table(figures: list[Figure]) -> None:
    rows = [("section", "metric", "measured", "target", "met", "ratio: ours / theirs (measured in this run)")]
    for f in figures:
        met = "" if f.met is None else ("yes" if f.met else "NO")
        rows.append((f.section, f.metric, fmt_value(f), f.target, met, fmt_compare(f)))
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    print()
    for n, row in enumerate(rows):
        cells = (
            cell.rjust(w) if c == 2 else cell.ljust(w) for c, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print("ratios: for µs and s, below 1 means ours takes less time; for /s, above 1 means ours is faster.")
    print()
    print("details:")
    for f in figures:
        if f.detail:
            print(f"  {f.metric}: {f.detail}")


def print_profile(profile: dict) -> None:
    print()
    print(f"where verify_signatures(workers=1) spends its time, per entry, over the first {profile['rows']:,} entries:")
    for name, us in profile["us_per_entry"].items():
        print(f"  {name:<50} {us:8.1f} µs  {profile['share'][name]:6.1%}")
    print(f"  {'sum of the steps':<50} {profile['sum_of_steps_us_per_entry']:8.1f} µs")
    print(f"  {'_check_chunk alone (the workers part), measured':<50} {profile['verify_chunk_us_per_entry']:8.1f} µs")
    walk = sum(v for k, v in profile["us_per_entry"].items() if k.startswith("read rows"))
    print(
        f"  the walk (one process, in index order) takes {walk:,.1f} µs per entry, the workers' part "
        f"{profile['sum_of_steps_us_per_entry'] - walk:,.1f} µs: on 2 cores the walk shares a core with a worker"
    )
    print(
        "  canonical re-encoding, median by type: "
        + ", ".join(
            f"{k} {v:,.1f} µs ({profile['entries_by_type'][k]:,})" for k, v in profile["canonical_us_by_type"].items()
        )
    )


class Tee(io.TextIOBase):
    """Print to the terminal and keep the same text for the .txt beside the JSON."""

    def __init__(self, *streams: io.TextIOBase) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="signed ledger size (default 1,000,000)")
    parser.add_argument("--out", type=Path, default=Path("docs/figures/trust_bench.json"), help="JSON results file")
    parser.add_argument("--samples", type=int, default=5000, help="entries signed and checked one by one")
    parser.add_argument("--ssh-samples", type=int, default=200, help="ssh-keygen calls (a process each) per figure")
    parser.add_argument("--single", type=int, default=2000, help="Home.record calls with a commit each")
    parser.add_argument("--batch", type=int, default=1000, help="entries per Home.append batch (admission section)")
    parser.add_argument("--batches", type=int, default=20, help="batches per variant (admission section)")
    parser.add_argument("--roster", type=int, default=100, help="roster size for the big-roster Home.record figure")
    parser.add_argument("--build-batch", type=int, default=10_000, help="entries per batch loading the big ledgers")
    parser.add_argument(
        "--admission",
        choices=("home", "ledger"),
        default="home",
        help="load the signed ledger through Home.append (admission) or Ledger.append_batch",
    )
    parser.add_argument("--profile-rows", type=int, default=50_000, help="entries the per-step profile runs over")
    args = parser.parse_args(argv)
    if args.entries < 1000:
        parser.error("--entries must be at least 1,000")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    text_path = args.out.with_suffix(".txt")
    with text_path.open("w", encoding="utf-8") as text, contextlib.redirect_stdout(Tee(sys.stdout, text)):
        return run(args, text_path)


def run(args: argparse.Namespace, text_path: Path) -> int:
    started = datetime.now(UTC)
    meta: dict = {
        "date": started.strftime("%Y-%m-%d"),
        "started": started.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": cpu_model()},
        "git": _git_state(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "openssh": _ssh_version(),
        "cryptography": _version("cryptography"),
        "config": {k: str(v) for k, v in vars(args).items()},
        "targets": {"action_us": TARGET_ACTION_US, "full_verify_s": TARGET_FULL_VERIFY_S},
        "published_unsigned_verify_s": PUBLISHED_UNSIGNED_VERIFY_S,
    }
    print(
        f"signatures benchmark: {args.entries:,} entries, {os.cpu_count()} CPUs ({meta['machine']['processor']}), "
        f"Python {meta['python']}, SQLite {meta['sqlite']}, cryptography {meta['cryptography']}, {meta['openssh']}"
    )
    print(f"started {meta['started']}; 1-min load average at start {load_average()} (the machine is shared)")
    figures: list[Figure] = []
    notes: list[str] = []
    loads: dict[str, float] = {"start": load_average()}
    with tempfile.TemporaryDirectory(prefix="custody-trust-bench-") as tmp_name:
        tmp = Path(tmp_name)
        log("per action")
        figures += per_action(tmp, args)
        loads["after_per_action"] = load_average()
        log("admission")
        figures += admission(tmp, args)
        loads["after_admission"] = load_average()
        log(f"loading {args.entries:,} signed and {args.entries:,} unsigned entries")
        verify_figures, verification = full_verification(tmp, args, notes)
        figures += verify_figures
        loads["end"] = load_average()

    print_table(figures)
    print_profile(verification["profile"])
    sizes = verification["bytes_on_disk"]
    print()
    print(
        f"on disk: signed {sizes['signed'] / 2**20:,.0f} MiB ({sizes['signed'] / args.entries:,.0f} bytes/entry), "
        f"unsigned {sizes['unsigned'] / 2**20:,.0f} MiB ({sizes['unsigned'] / args.entries:,.0f} bytes/entry)"
    )
    cpus = os.cpu_count() or 1
    busy = max(loads.values()) > cpus
    print(
        "1-min load average: "
        + ", ".join(f"{k} {v}" for k, v in loads.items())
        + f" on {cpus} CPUs"
        + ("  <- other jobs shared the machine: wall-clock figures are pessimistic" if busy else "")
    )
    print(
        f"compared with: ssh-keygen -Y (OpenSSH's own SSHSIG, a process per call) and bare Ed25519 from cryptography, "
        f"measured in this run; the published {PUBLISHED_UNSIGNED_VERIFY_S} s (1M unsigned, bench/ledger.py) is "
        "another run with smaller entries, for orientation only."
    )
    for note in notes:
        print(f"NOTE: {note}")
    out = {**meta, "load_average": loads, "figures": [vars(f) for f in figures], "verification": verification}
    out["notes"] = notes
    args.out.write_text(json.dumps(stamp(out), indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out} and {text_path}")
    return 0


def _git_state() -> dict:
    """The commit measured, and whether the sources measured differ from it (uncommitted edits)."""
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "platform/custody/ledger", "platform/custody/trust"],
            cwd=repo,
            capture_output=True,
            text=True,
        ).stdout.split()
    except OSError:
        return {}
    return {"commit": commit, "sources_modified": dirty[1::2]}


def _ssh_version() -> str:
    try:
        done = subprocess.run(["ssh", "-V"], capture_output=True, text=True)
    except OSError:
        return "no OpenSSH"
    return (done.stderr or done.stdout).strip().split(",")[0]


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
