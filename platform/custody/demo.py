"""The end-to-end demo: every step is a real `custody` command, printed before it runs.

It builds its own home (a temp dir unless --home is given) and generates its own data, so it
needs nothing but the checkout: no network, no shared files. The story: its people get SSH keys
(an admin, an engineer, a privacy reviewer, an ML lead, the dashboard) and go on the roster; the
admin binds the commercial purpose to the shipped policy; five sources are registered and
checked (and custody's own toxicity classifier's training record verified offline); the gate
denies the ones it must (a shadow library, a dump with no license, pages full
of contact data) with reasons; a run spec prepares the data (PII redacted, toxic lines dropped,
duplicates removed) and is held for a person's approval; a forged approval (the engineer's key
claiming to be the ML lead) is refused; the ML lead approves with their own key, and a small GPT
trains with energy, carbon and water measured; a held-out set scores it and the gate releases
it; a page of a book is traced to the run and its
checkpoints (`custody find`); the model misses a support team's release bar, so it is fine-tuned
on approved support dialogues and clears it; two reviewers judge pairs of its replies with their
own keys, and a reward model and a DPO run learn from those judgements, each through the gate;
reports go out, the ledger verifies, and stock
`ssh-keygen` checks who signed the approval; a witness cosigns; and the book's estate asks for
it to be taken down: the ML lead applies the request through the lineage (new versions, the run
tainted), the gate denies the old data, the admin erases its bytes, and a proof of removal
verifies offline.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from custody.demo_corpus import write_demo_evalset, write_demo_sources, write_support_sources
from custody.paths import pipelines_dir
from custody.toxicity import linear
from custody.trust.sshkeys import generate_key

console = Console(highlight=False, soft_wrap=True, markup=False)
ADMIN, ENGINEER = "security@example.org", "engineer@example.org"
REVIEWER, LEAD, DASHBOARD = "privacy@example.org", "ml-lead@example.org", "dashboard"
PEOPLE = (  # name, roles
    (ENGINEER, ("engineer",)),
    (REVIEWER, ("reviewer",)),
    (LEAD, ("approver", "reviewer")),
    (DASHBOARD, ("attestor",)),
)


class DemoStepFailed(RuntimeError):
    pass


_KEYS: dict[str, Path] = {}  # each demo person's private key file


def _custody(
    *args: str,
    expect: tuple[int, ...] = (0,),
    quiet: bool = False,
    stdin: str | None = None,
    key: str = ENGINEER,
) -> str:
    """Run one command as `key`'s holder, print it and its output; fail unless it exits as expected."""
    command = [sys.executable, "-m", "custody", *args]
    who = f"CUSTODY_KEY=keys/{_KEYS[key].name} " if key in _KEYS else ""
    console.print(f"\n$ {who}custody {' '.join(shlex.quote(a) for a in args)}", style="bold cyan")
    # Wide output: the commands print tables that a terminal would show side by side.
    env = {**os.environ, "COLUMNS": os.environ.get("COLUMNS", "160")}
    if key in _KEYS:
        env["CUSTODY_KEY"] = str(_KEYS[key])
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env, input=stdin)
    shown = result.stderr if quiet else result.stdout + result.stderr
    if shown.strip():
        console.print(shown.rstrip())
    if result.returncode not in expect:
        if quiet:
            console.print(result.stdout.rstrip())
        raise DemoStepFailed(f"`custody {' '.join(args)}` exited {result.returncode} (expected {expect})")
    if result.returncode != 0:
        console.print(f"(exit {result.returncode}, as expected)", style="dim")
    return result.stdout.strip()


def _reflowed_page(books: Path, out: Path) -> Path:
    """40 words of the first chapter, one or two per line and in capitals, as a reader would paste them."""
    first = json.loads((sorted(books.glob("*.jsonl"))[0]).read_text(encoding="utf-8").splitlines()[0])
    words = first["text"].split()[5:45]
    out.write_text("\n".join(" ".join(words[i : i + 2]).upper() for i in range(0, len(words), 2)), encoding="utf-8")
    return out


def run_demo(home: Path | None = None) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="custody-demo-"))
    home = home or workdir / "home"
    h = ("--home", str(home))
    spec = pipelines_dir() / "demo.toml"
    try:
        console.rule("custody demo: a tamper-evident ledger for training data", style="bold")
        console.print("# each person holds an OpenSSH Ed25519 key (what `ssh-keygen -t ed25519` makes)", style="dim")
        keys = workdir / "keys"
        for name in (ADMIN, *(p for p, _ in PEOPLE)):
            _KEYS[name] = keys / name.split("@")[0]
            generate_key(_KEYS[name], name)
            console.print(f"  {name}: {_KEYS[name]}.pub")
        _custody("init", "--admin", ADMIN, "--admin-key", f"{_KEYS[ADMIN]}.pub", *h)
        for name, roles in PEOPLE:
            role_args = [a for r in roles for a in ("--role", r)]
            _custody("people", "add", name, "--key", f"{_KEYS[name]}.pub", *role_args, *h, key=ADMIN)
        console.print(
            "# the admin binds the commercial purpose to the shipped policy: runs cannot pick another", style="dim"
        )
        _custody("policy", "bind", "commercial", "default", *h, key=ADMIN)
        _custody("people", "list", *h)
        note = "Data-use agreement with the web-crawl vendor signed (ref DUA-2026-014)"
        _custody("ledger", "note", note, "--subject", "dataset:web-pages", *h)
        first = workdir / "checkpoint-1.note"
        _custody("ledger", "checkpoint", "--out", str(first), *h)

        console.rule("1. five sources, each registered with its card", style="bold")
        for source in write_demo_sources(workdir / "sources"):
            _custody(
                "dataset", "register", str(source.folder), "--name", source.name, "--version", "1",
                "--card", str(source.card), "--id-field", "id", *h,
            )  # fmt: skip
        _custody("dataset", "list", *h)

        console.rule("2. provenance, license, PII and toxicity checks on the raw sources", style="bold")
        console.print(
            "# the checks this installation knows (a plug-in package adds its own under custody.checks)", style="dim"
        )
        _custody("catalog", "checks")
        for name in ("web-pages@1", "forum-dump@1", "shadow-books@1"):
            _custody("check", name, *h)
        console.print(
            "# custody's own toxicity classifier ships with the report of the governed run that trained it"
            " (pipelines/custody-linear.toml):",
            style="dim",
        )
        console.print("# who asked, which data the gate allowed under which license, the weights' digest", style="dim")
        _custody("verify-report", str(linear.REPORT), "--key", linear.VERIFIER_KEY.read_text(encoding="utf-8").strip())

        console.rule("3. the gate: raw sources against the commercial policy", style="bold")
        _custody("gate", "web-pages@1", "forum-dump@1", "shadow-books@1", "--purpose", "commercial", *h, expect=(3,))

        console.rule("4. a policy-gated training run (pipelines/demo.toml)", style="bold")
        console.print(
            "# prepares each source (web pages: PII redacted; all: duplicates and toxic lines out),", style="dim"
        )
        console.print(
            "# checks the prepared data and asks the gate: the policy wants a person to approve runs", style="dim"
        )
        _custody("run", str(spec), *h, expect=(4,))
        _custody("review", "list", *h)
        approval = ("review", "approve", "run:demo-gpt/training.approval", "--reason")
        console.print("# a forged approval: the engineer's own key, claiming to be the ML lead", style="dim")
        _custody(*approval, "looks fine to me", "--as", LEAD, *h, expect=(2,))
        console.print("# the engineer under their own name: no approver role, and they requested the run", style="dim")
        _custody(*approval, "looks fine to me", *h, expect=(2,))
        _custody(*approval, "data mix and energy estimate reviewed (ticket ML-204)", *h, key=LEAD)
        console.print("# the same spec again: prepared data and check results are reused, the gate allows", style="dim")
        console.print(
            "# --json: the demo reads the run's id and figures from it; what shows is its progress", style="dim"
        )
        console.print(
            "# --nproc-per-node 2: torchrun's ranks train it; the gate runs once, here, and each rank checks",
            style="dim",
        )
        console.print(
            "# the decision and every token shard against its own ledger and store before it reads a token", style="dim"
        )
        run = json.loads(_custody("run", str(spec), "--json", "--nproc-per-node", "2", *h, quiet=True))
        used = run["emissions"]
        console.print(
            f"run {run['run_id']}: final val loss {run['final_val_loss']:.3f} ({run.get('world_size', 1)} ranks), "
            f"model sha256 "
            f"{run['model_digest'][:16]}, {used['energy_kwh'] * 1000:.3f} Wh, "
            f"{used['emissions_kg_co2e'] * 1000:.3f} g CO2e, {used['water_l']:.4f} L water"
        )

        console.print(
            "# an annotated held-out set, registered like any dataset, scores the model per slice;", style="dim"
        )
        console.print(
            "# the release goes through the gate: the training data as it stands now, and whether", style="dim"
        )
        console.print("# the held-out set leaked into training (13-word overlap)", style="dim")
        held_out = write_demo_evalset(workdir / "eval")
        _custody(
            "dataset", "register", str(held_out.folder), "--name", "held-out", "--version", "1",
            "--card", str(held_out.card), "--id-field", "id", *h,
        )  # fmt: skip
        _custody("eval", run["run_id"], "held-out@1", *h)
        _custody("release", run["run_id"], *h, key=LEAD)

        console.print("# was this book in the model? A page of it, re-flowed and in capitals, is found in", style="dim")
        console.print("# the source, the data prepared for the run, and the run and its checkpoints", style="dim")
        page = _reflowed_page(workdir / "sources" / "books", workdir / "page.txt")
        _custody("find", "--text-file", str(page), *h)

        console.print("# your own loop, through the Python API: custody.governed_run asks the same gate", style="dim")
        _own_loop_story(home, h, run["datasets"])

        console.rule("5. evaluate, fine-tune where the model falls short, release", style="bold")
        tuned = _finetune_story(workdir, h, run["model_digest"])

        console.rule("6. RLHF: reviewers judge replies, a reward model learns them, DPO follows it", style="bold")
        _rlhf_story(workdir, h, tuned)

        console.rule("7. provenance reports and standard exports, verifiable offline", style="bold")
        reports = workdir / "reports"
        for source in ("web-pages@1", "books@1", "code@1", "forum-dump@1", "shadow-books@1"):
            _custody("report", source, "--format", "html", "--out", str(reports / f"{source}.html"), *h)
        _custody(
            "report", "web-pages@1", "--format", "croissant", "--out", str(reports / "web-pages@1.croissant.json"), *h
        )
        for fmt, suffix in (("md", "md"), ("html", "html"), ("ai-act-summary", "ai-act.md"), ("spdx", "spdx.json")):
            _custody("report", run["run_id"], "--format", fmt, "--out", str(reports / f"{run['run_id']}.{suffix}"), *h)

        console.rule("8. the audit trail", style="bold")
        _custody("ledger", "show", "--type", "run.", *h)
        decision = str(run["decision_index"])
        proof = workdir / f"proof-{decision}.json"
        _custody("ledger", "proof", decision, "--out", str(proof), *h)
        key = _custody("ledger", "pubkey", *h)
        console.print("# an auditor needs only the proof file and the key:", style="dim")
        _custody("ledger", "verify-proof", str(proof), "--key", key)
        _custody("verify-report", str(reports / f"{run['run_id']}.md"), "--key", key)
        _custody("gate", "replay", decision, *h)
        _custody("ledger", "consistency", str(first), *h)
        _custody("ledger", "verify", *h)
        console.print("# who signed the approval, checked with stock OpenSSH and nothing of custody's:", style="dim")
        approved = _approval_index(home)
        body, signature = workdir / f"entry-{approved}.json", workdir / f"entry-{approved}.sig"
        _custody("ledger", "entry", str(approved), "--body-out", str(body), "--signature-out", str(signature), *h)
        signers = workdir / "allowed_signers"
        _custody("people", "allowed-signers", "--out", str(signers), *h)
        _ssh_keygen_verify(signers, LEAD, signature, body)
        console.rule("9. an independent witness cosigns the log", style="bold")
        handover = _witness_story(workdir, home, key, first)

        console.rule("10. takedown: the book's estate asks for it out, and gets a proof", style="bold")
        proof_of_removal, request_id = _takedown_story(workdir, page, spec, key, h, run["run_id"])
        console.print("# a site owner's opt-out arrives through a registry (docs/optout.md): custody says", style="dim")
        console.print(
            "# which registered datasets it now touches; the provenance check flags those records", style="dim"
        )
        optouts = workdir / "optouts.csv"
        optouts.write_text(
            "kind,value,source,date\ndomain,git.example.org,site owner's form,2026-11-30\n", encoding="utf-8"
        )
        _custody("optout", "import", str(optouts), "--registry", "site-owners", *h)
        _custody("optout", "list", *h)
        password = secrets.token_urlsafe(12)
        _custody(
            "user", "add", REVIEWER, "--role", "reviewer", "--password-stdin", *h, stdin=password + "\n", key=ADMIN
        )
    except DemoStepFailed as exc:
        console.print(f"demo failed: {exc}", style="bold red")
        return 1
    console.rule("demo complete", style="bold green")
    console.print(f"home:   {home}")
    console.print(f"files:  {workdir} (keys, sources, reports, proofs, the witness)")
    console.print(f"proof:  {proof} (verify with the key {key})")
    console.print(f"hand-over: {handover} (custody ledger verify-consistency, with the log's and the witness's keys)")
    console.print(f"reports: {reports} (one per source dataset; the run as md, html, EU AI Act summary, SPDX 3)")
    console.print(f"takedown: {proof_of_removal} (request {request_id}; custody takedown verify-proof FILE --key KEY)")
    console.print("next:")
    console.print(
        f"  custody dashboard --home {home} --key {_KEYS[DASHBOARD]}   # sign in as {REVIEWER}, password {password}"
    )
    console.print(f"  custody ledger show --home {home} --limit 200")
    return 0


SUPPORT_PERPLEXITY = 400.0  # the release bar the demo's support model must clear

RELEASE_POLICY = f"""\
schema = 1
name = "support-release"
description = "What a support model must show before it answers customers."
purpose = "commercial"

[release.evaluation]
explanation = "Released only when its perplexity on the support evaluation set is at most {SUPPORT_PERPLEXITY}."
require = [{{ evalset = "support-eval", metric = "perplexity", at_most = {SUPPORT_PERPLEXITY} }}]
"""

SPEC_HEAD = """\
schema = 1
name = "{name}"
description = "{description}"
kind = "{kind}"

[policy]
purpose = "commercial"

[[datasets]]
ref = "{dataset}"

[carbon]
country_iso_code = "USA"
estimated_kwh = 0.01
estimated_kg_co2e = 0.005
"""
FINETUNE = """
[prepare]
stages = ["dedup-exact"]

[finetune]
checkpoint = "sha256:{checkpoint}"

[training]
steps = 80
batch_size = 8
lr = 1e-3
min_lr = 1e-4
warmup = 10
eval_interval = 40
eval_steps = 4

[[evaluations]]
evalset = "support-eval@1"
"""
REWARD = """
[reward]
checkpoint = "sha256:{checkpoint}"  # the policy model: its blocks frozen, one block and a scalar head added
add_blocks = 1
held_out = 0.25

[training]
steps = 60
batch_size = 16
lr = 3e-3
warmup = 5
eval_interval = 0
"""
DPO = """
[dpo]
checkpoint = "sha256:{checkpoint}"     # the reference: where the policy starts, and what KL is measured to
reward_model = "sha256:{reward}"       # scores the completions of held-out prompts, before and after
beta = 0.5
max_kl = 10.0
held_out = 0.25
eval_prompts = 8
samples_per_prompt = 4
max_new_tokens = 16

[training]
steps = 30
batch_size = 8
lr = 2e-4
warmup = 3
eval_interval = 10
"""
PREFS = "support-prefs@1"
HELPFUL_WORDS = ("thank", "glad", "happy", "sorry", "help")


def _spec(workdir: Path, name: str, description: str, kind: str, dataset: str, body: str) -> Path:
    """A run spec the demo writes: its datasets and starting checkpoints are known only once made."""
    path = workdir / f"{name}.toml"
    head = SPEC_HEAD.format(name=name, description=description, kind=kind, dataset=dataset)
    path.write_text(head + body, encoding="utf-8")
    return path


def _approved_run(spec: Path, name: str, h: tuple[str, str]) -> dict:
    """A run the policy holds for approval: requested by the engineer, approved by the ML lead, run."""
    first = json.loads(_custody("run", str(spec), "--json", *h, expect=(3, 4), quiet=True))
    toxic = [r["finding"] for r in first["reasons"] if r["finding"].endswith("/toxicity.max-rate")]
    if first["decision"] == "deny" and toxic:  # a sampled reply scored as toxic in the preference data
        for line in (
            "# the checks read preference data like any dataset: a sampled reply scores as toxic.",
            "# Judged pairs are meant to hold bad replies (as the rejected one); the ML lead waives",
            "# the finding for this dataset, with the reason on record, and the run is asked again",
        ):
            console.print(line, style="dim")
        expires = (dt.date.today() + dt.timedelta(days=30)).isoformat()
        reason = "judged pairs of a small model's replies; toxic-scored text reviewed in the pairs (RLHF-7)"
        _custody("review", "waive", toxic[0], "--reason", reason, "--expires", expires, *h, key=LEAD)
        _custody("run", str(spec), *h, expect=(4,))
    elif first["decision"] != "needs-review":
        raise DemoStepFailed(f"run {name}: the gate said {first['decision']}")
    _custody("review", "approve", f"run:{name}/training.approval", "--reason", "reviewed the spec", *h, key=LEAD)
    return json.loads(_custody("run", str(spec), "--json", *h, quiet=True))


def _own_loop_story(home: Path, h: tuple[str, str], datasets: list[dict]) -> None:
    """A loop custody does not own (a byte-bigram model in plain torch) under custody.governed_run: the
    same gate (the policy wants the ML lead's approval here too), verified data, the same entries."""
    import torch

    from custody.runs.api import RunDenied, governed_run

    refs = [d["ref"] for d in datasets]
    name, key = "bigram-probe", _KEYS[ENGINEER]
    # the estimates the policy's training.budget rule asks every run for, as a spec's [carbon] gives them
    probe = {"trainer": "plain torch loop", "estimated_kwh": 0.001, "estimated_kg_co2e": 0.0005}
    console.print(
        f'\n>>> with custody.governed_run("commercial", {refs}, name="{name}", key=...) as run:', style="bold cyan"
    )
    try:
        with governed_run("commercial", refs, home=home, name=name, key=key, **probe):
            raise DemoStepFailed("the gate allowed a run nobody approved")
    except RunDenied as denied:
        console.print(f"RunDenied: {denied.decision} (ledger index {denied.ledger_index}); nothing started")
        for reason in denied.reasons:
            console.print(f"  {reason}")
    _custody("review", "approve", f"run:{name}/training.approval", "--reason", "a probe on approved data", *h, key=LEAD)
    torch.manual_seed(0)
    model = torch.nn.Embedding(256, 256)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    with governed_run("commercial", refs, home=home, name=name, key=key, **probe) as run:
        for step, text in enumerate(run.texts(), start=1):  # each shard hashed against the approval first
            ids = torch.tensor(list(text.encode("utf-8")[:512]), dtype=torch.long)
            if len(ids) < 2:
                continue
            loss = torch.nn.functional.cross_entropy(model(ids[:-1]), ids[1:])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            run.log(step, loss=loss.item())
        weights = run.directory / "bigram.pt"
        weights.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), weights)
        digest = run.checkpoint(weights)
    console.print(
        f"run {run.run_id} ({run.trainer}): {len(losses)} records, loss {losses[0]:.2f} -> {losses[-1]:.2f}, "
        f"weights sha256 {digest[:16]}; started, checkpoint and finished at ledger indexes "
        f"{run.entries['run.started']}..{run.entries['run.finished']}, with its energy"
    )


def _finetune_story(workdir: Path, h: tuple[str, str], pretrained: str) -> dict:
    """The brief's loop: the pretrained model misses the support bar, a fine-tune on approved
    support dialogues clears it, and only then is it released."""
    console.print(
        "# support dialogues to fine-tune on, an evaluation set in templates of its own, prompts", style="dim"
    )
    for source in write_support_sources(workdir / "support"):
        _custody(
            "dataset", "register", str(source.folder), "--name", source.name, "--version", "1",
            "--card", str(source.card), "--id-field", "id", *h,
        )  # fmt: skip
    policy = workdir / "support-release.toml"
    policy.write_text(RELEASE_POLICY, encoding="utf-8")
    console.print(
        f"# the release bar ({policy.name}): perplexity on support-eval@1 at most {SUPPORT_PERPLEXITY}", style="dim"
    )
    _custody("eval", f"sha256:{pretrained}", "support-eval@1", *h)
    _custody("release", f"sha256:{pretrained}", "--policy", str(policy), *h, key=LEAD, expect=(3,))
    console.print(
        "# so: fine-tune it on the support dialogues, a governed run like any other; the spec lists", style="dim"
    )
    console.print("# the evaluation set, checked for leaks before training and scored after it", style="dim")
    about = "Fine-tune the demo GPT on support dialogues."
    spec = _spec(workdir, "support-gpt", about, "finetune", "support@1", FINETUNE.format(checkpoint=pretrained))
    tuned = _approved_run(spec, "support-gpt", h)
    scored = tuned["evaluations"][0]["results"]["all"]
    console.print(f"run {tuned['run_id']}: support-eval@1 perplexity {scored['perplexity']}")
    _custody("release", tuned["run_id"], "--policy", str(policy), *h, key=LEAD)
    return tuned


def _scripted_judgements(queue: list[dict], out: Path) -> Path:
    """What a scripted reviewer decides: the more helpful reply wins; equal ones are a tie."""
    lines = []
    for pair in queue:
        a, b = (sum(word in text.lower() for word in HELPFUL_WORDS) for text in (pair["a"], pair["b"]))
        lines.append(json.dumps({"pair": pair["pair"], "choice": "tie" if a == b else ("a" if a > b else "b")}))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def _rlhf_story(workdir: Path, h: tuple[str, str], tuned: dict) -> None:
    """Pairs sampled from the support model, judged by two reviewers with their own keys, exported
    to a preference dataset; a reward model and a DPO run, each through the gate."""
    console.print("# two replies to each support prompt, sampled from the released model", style="dim")
    sampled = ("prefs", "sample", tuned["run_id"], "support-prompts@1", "--pairs", "96", "--max-new-tokens", "16")
    _custody(*sampled, "--json", *h, quiet=True)
    _custody("prefs", "show", str(_first_pair(h)), *h)
    console.print("# each reviewer takes their queue and signs their judgements with their own key", style="dim")
    for reviewer in (REVIEWER, LEAD):
        queue = json.loads(_custody("prefs", "pending", "--json", *h, key=reviewer, quiet=True))
        file = _scripted_judgements(queue, workdir / f"judgements-{reviewer.split('@')[0]}.jsonl")
        _custody("prefs", "judge", "--file", str(file), *h, key=reviewer)
    console.print("# the judgements become a registered dataset: its parent is the prompt set, and its", style="dim")
    console.print("# export entry names the model and every judgement; the checks read it like any data", style="dim")
    _custody("prefs", "export", tuned["run_id"], "support-prompts@1", "--name", PREFS, *h)
    console.print("# a reward model: the support model frozen, a new block and a scalar head trained on", style="dim")
    console.print("# the preferences (Bradley-Terry); requested by the engineer, who judged none of them", style="dim")
    body = REWARD.format(checkpoint=tuned["model_digest"])
    reward_spec = _spec(workdir, "support-reward", "A reward model for support replies.", "reward", PREFS, body)
    reward = _approved_run(reward_spec, "support-reward", h)
    console.print(f"run {reward['run_id']}: held-out ranking accuracy {reward['preference']['held_out_accuracy']}")
    console.print("# DPO from the support model; the reward model scores held-out prompts' replies", style="dim")
    body = DPO.format(checkpoint=tuned["model_digest"], reward=reward["model_digest"])
    dpo_spec = _spec(workdir, "support-dpo", "Direct preference optimization of the support model.", "dpo", PREFS, body)
    dpo = _approved_run(dpo_spec, "support-dpo", h)["preference"]
    console.print(
        f"mean reward on held-out prompts {dpo['reward_before']} -> {dpo['reward_after']}, "
        f"KL to the support model {dpo['kl']} nats (bound {dpo['max_kl']})"
    )


def _first_pair(h: tuple[str, str]) -> int:
    return json.loads(_custody("prefs", "list", "--json", *h, quiet=True))[0]["pair"]


def _takedown_story(
    workdir: Path, page: Path, spec: Path, key: str, h: tuple[str, str], run_id: str
) -> tuple[Path, str]:
    """The estate's request, applied through the lineage by the ML lead; the old data denied, the
    removed bytes erased by the admin, and a proof of removal checked with the ledger's key alone."""
    console.print("# the request keeps the page's digest and n-gram fingerprint, never its text", style="dim")
    asked = ("takedown", "request", "--by", "Estate of the author of books@1", "--reason", "copyright")
    request_id = json.loads(_custody(*asked, "--text-file", str(page), "--json", *h, quiet=True))["id"]
    _custody("takedown", "show", request_id, *h)
    console.print("# the ML lead decides: new versions without the book, the run's data derived again,", style="dim")
    console.print("# the run that trained on it (and its checkpoints) marked tainted", style="dim")
    _custody("takedown", "apply", request_id, *h, key=LEAD)
    console.print("# the same spec again: its prepared data is the taken-down version, so the gate denies", style="dim")
    _custody("run", str(spec), *h, expect=(3,))
    console.print("# nor can the model trained on it be released again", style="dim")
    _custody("release", run_id, *h, key=LEAD, expect=(3,))
    console.print("# the admin erases the replaced shards; the ledger keeps their digests and verifies", style="dim")
    _custody("store", "gc", *h, key=ADMIN)
    _custody("ledger", "verify", *h)
    _custody("find", "--text-file", str(page), *h, expect=(1,))
    proof = workdir / f"takedown-{request_id}.json"
    _custody("takedown", "proof", request_id, "--out", str(proof), *h)
    console.print("# the estate's lawyer needs only the proof file and the ledger's key:", style="dim")
    _custody("takedown", "verify-proof", str(proof), "--key", key)
    return proof, request_id


def _approval_index(home: Path) -> int:
    """The ledger index of the ML lead's approval (read through the CLI's JSON, as a script would)."""
    rows = json.loads(_custody("ledger", "show", "--type", "review.", "--json", "--home", str(home), quiet=True))
    return max(r["index"] for r in rows if r["entry"]["actor"] == LEAD)


def _ssh_keygen_verify(signers: Path, principal: str, signature: Path, body: Path) -> None:
    """`ssh-keygen -Y verify`, when OpenSSH is installed (the demo itself needs nothing but Python)."""
    if shutil.which("ssh-keygen") is None:
        console.print("# (ssh-keygen is not installed here; the files above are what it would check)", style="dim")
        return
    command = ["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", principal, "-n", "custody", "-s", str(signature)]
    console.print(f"\n$ {' '.join(shlex.quote(a) for a in command)} < {body}", style="bold cyan")
    with body.open("rb") as stdin:
        result = subprocess.run(command, stdin=stdin, capture_output=True, text=True, check=False)
    console.print((result.stdout + result.stderr).strip())
    if result.returncode != 0:
        raise DemoStepFailed("ssh-keygen did not accept the exported approval")


def _witness_story(workdir: Path, home: Path, key: str, first: Path) -> Path:
    """A witness with its own key and folder cosigns the head; proofs then carry its cosignature.

    In production the witness runs on another machine, kept by other people (docs/witness.md)."""
    h = ("--home", str(home))
    folder = workdir / "witness"
    witness_key = _custody("witness", "init", "--dir", str(folder), "--name", "witness.example.org/demo")
    _custody("witness", "add-log", "--dir", str(folder), "--key", key)
    command = [sys.executable, "-m", "custody", "witness", "serve", "--dir", str(folder), "--port", "0"]
    console.print(f"\n$ custody witness serve --dir {folder} --port 0 &", style="bold cyan")
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ready = server.stdout.readline().strip() if server.stdout else ""
        console.print(ready)
        if "listening on " not in ready:
            raise DemoStepFailed("the witness did not start")
        url = ready.split("listening on ", 1)[1]
        console.print("# the witness checks that the new head extends what it saw, then cosigns", style="dim")
        _custody("ledger", "checkpoint", "--witness", url, "--witness-key", witness_key, *h)
        handover = workdir / "handover.json"
        console.print("# proof that today's log extends the checkpoint kept at the start, for an auditor:", style="dim")
        _custody("ledger", "consistency-proof", str(first), "--out", str(handover), *h)
        _custody("ledger", "verify-consistency", str(handover), "--key", key, "--witness-key", witness_key)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return handover
