"""`custody export-model`: a tiny governed run's weights written in the Hugging Face GPT-2 layout
load with transformers and give the same logits as custody's model; the tokenizer encodes the same
ids; the card names the data, digests, run, evaluations and energy with a signed checkpoint; the
folder's manifest digest is recorded. Folders holding another model or a corrupt one, and models
that are not language models, are refused in one line with nothing recorded."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import yaml

from custody.interop.export_model import export_model, file_entries, manifest_digest
from custody.interop.gpt2 import NotExportable, hf_config, hf_state
from custody.ledger import query
from custody.runs.spec import load_spec
from custody.runs.trainers import run_spec
from custody.train.checkpoint import load_checkpoint
from custody.train.model import GPT, GPTConfig
from custody.train.tokenizer import load_tokenizer
from run_data import POLICY, SPEC, people_home, write
from test_eval import LOSS_SET, register
from train_support import register_shakespeare

transformers = pytest.importorskip("transformers")

TEXTS = ["To be, or not to be, that is the question:", "First Citizen:\nBefore we proceed any further, hear me speak."]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cast):
    root = tmp_path_factory.mktemp("export")
    home = people_home(cast, root / "home")
    register_shakespeare(home, root, limit=400, shards=2)
    policy = write(root / "policy.toml", POLICY.format(approval=""))
    spec = write(root / "pretrain.toml", SPEC.format(name="tiny", kind="pretrain", policy=policy, extra=""))
    outcome = run_spec(home, load_spec(spec), actor=cast.person(home, "trainer"), say=lambda _: None)
    from custody.evals.run_eval import evaluate

    evaluate(home, outcome.run_id, register(home, root, "held-out", LOSS_SET))
    yield home, root, outcome
    home.close()


def custody_model(home, digest):
    checkpoint = load_checkpoint(home.store.path_for(digest), digest)
    tokenizer_digest = checkpoint.state["meta"]["tokenizer_digest"]
    return checkpoint.build_model().eval(), load_tokenizer(home.store.path_for(tokenizer_digest), tokenizer_digest)


def exported_entries(home):
    return [query.body(row) for row in query.entries(home.storage, "model.exported/")]


def test_transformers_loads_the_export_and_gets_the_same_logits_and_ids(trained, cast):
    home, root, outcome = trained
    out = root / "hf"
    done = export_model(home, outcome.run_id, out, actor=cast.person(home, "trainer"))
    assert not done.already and sorted(f["path"] for f in done.files) == sorted(
        ["README.md", "config.json", "model.safetensors", "provenance.json", "special_tokens_map.json",
         "tokenizer.json", "tokenizer_config.json"]
    )  # fmt: skip
    model, tokenizer = custody_model(home, done.model_digest)
    hf = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    hf_tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(out)
    assert hf.config.tie_word_embeddings and hf.config.activation_function == "gelu"
    assert hf_tokenizer.eos_token == hf_tokenizer.bos_token == "<|endoftext|>"
    for text in TEXTS:
        ids = tokenizer.encode(text)
        assert hf_tokenizer(text)["input_ids"] == ids
        assert hf_tokenizer.decode(ids) == text
        x = torch.tensor([ids[: model.config.block_size]])
        with torch.no_grad():
            ours, _ = model(x)
            theirs = hf(x).logits
        assert torch.allclose(ours, theirs, atol=1e-4, rtol=0), (ours - theirs).abs().max()

    # recorded: the manifest digest of exactly the files in the folder
    entry = exported_entries(home)[-1]
    assert entry["manifest_digest"] == manifest_digest(file_entries(out)) == done.manifest_digest
    assert entry["model_digest"] == done.model_digest and entry["run_id"] == outcome.run_id

    # the same model again: nothing written, nothing recorded
    size = home.ledger.size
    again = export_model(home, done.model_digest, out)
    assert again.already and again.ledger_index == done.ledger_index and home.ledger.size == size


def test_the_card_names_data_digests_run_evaluations_energy_and_a_signed_checkpoint(trained):
    home, root, outcome = trained
    out = root / "card"
    done = export_model(home, outcome.run_id, out)
    text = (out / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(text.split("---\n")[1])
    started = query.body(query.first(home.storage, "run.started/", f"run:{outcome.run_id}"))
    finished = query.body(query.latest(home.storage, "run.finished/", f"run:{outcome.run_id}"))
    custody = meta["custody"]
    assert custody["run_id"] == outcome.run_id and custody["model_sha256"] == done.model_digest
    assert [(d["ref"], d["sha256"]) for d in custody["datasets"]] == [
        (d["ref"], d["digest"]) for d in started["datasets"]
    ]
    assert all(d["source"] and d["source_sha256"] for d in custody["datasets"])
    assert meta["datasets"] == [d["ref"] for d in started["datasets"]]
    assert meta["license"] and meta["library_name"] == "transformers"
    assert custody["energy"]["training"]["energy_kwh"] == finished["emissions"]["energy_kwh"]
    assert custody["energy"]["total_emissions_kg_co2e"] >= finished["emissions"]["emissions_kg_co2e"]
    assert [e["evalset"] for e in custody["evaluations"]] == ["held-out@1"]
    assert "perplexity" in custody["evaluations"][0]["results"]["all"]
    note = custody["ledger"]["checkpoint"]
    assert note.startswith(home.config.origin) and custody["ledger"]["tree_size"] <= home.ledger.size
    assert done.model_digest in text and outcome.run_id in text
    # every cited entry is proved to that signed checkpoint, offline
    from custody.ledger.verifier import leaf_hash, parse_verifier_key, verify_checkpoint, verify_inclusion

    provenance = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    checkpoint = verify_checkpoint(note, parse_verifier_key(home.config.verifier_key))
    assert checkpoint.size == provenance["tree_size"] == custody["ledger"]["tree_size"]
    cited = {e["index"] for e in custody["ledger"]["cited_entries"]}
    assert cited == {e["index"] for e in provenance["entries"]}
    assert custody["run_entries"]["run.started"] in cited and custody["run_entries"]["run.finished"] in cited
    for anchored in provenance["entries"]:
        leaf = leaf_hash(anchored["entry"].encode())
        proof = [bytes.fromhex(p) for p in anchored["proof"]]
        verify_inclusion(anchored["index"], checkpoint.size, leaf, proof, checkpoint.root)


def test_a_folder_holding_another_model_or_a_corrupt_one_is_refused_nothing_recorded(trained, cast):
    from typer.testing import CliRunner

    from custody.cli.main import app

    home, root, outcome = trained
    env = {"CUSTODY_KEY": str(cast.key_file("trainer"))}
    h = ["--home", str(home.path)]
    out = root / "cli"
    done = CliRunner().invoke(app, ["export-model", outcome.run_id, "--out", str(out), *h], env=env)
    assert done.exit_code == 0, done.output
    assert "model.exported at ledger index" in done.stdout
    size = home.ledger.size

    # another checkpoint of the same run: different weights
    other = query.body(query.first(home.storage, "run.checkpoint/", None))["checkpoint_digest"]
    weights = (out / "model.safetensors").read_bytes()
    cases = [
        (["sha256:" + other, "--out", str(out)], "already holds a different model"),
        (["sha256:" + "1" * 64, "--out", str(root / "x")], "no recorded run wrote"),
        ([outcome.run_id, "--out", str(out), "--format", "onnx"], "unknown model format"),
    ]
    for args, says in cases:
        done = CliRunner().invoke(app, ["export-model", *args, *h], env=env)
        assert done.exit_code == 2 and says in done.stderr, done.output
        assert len(done.stderr.strip().splitlines()) == 1
    (out / "model.safetensors").write_bytes(weights[:100])
    done = CliRunner().invoke(app, ["export-model", outcome.run_id, "--out", str(out), *h], env=env)
    assert done.exit_code == 2 and "not a readable safetensors file" in done.stderr, done.output
    assert len(done.stderr.strip().splitlines()) == 1
    (out / "model.safetensors").write_bytes(weights)
    stray = root / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine", encoding="utf-8")
    done = CliRunner().invoke(app, ["export-model", outcome.run_id, "--out", str(stray), *h], env=env)
    assert done.exit_code == 2 and "holds no model.safetensors" in done.stderr, done.output
    assert home.ledger.size == size


def test_a_reward_model_or_a_replaced_head_is_not_a_gpt2_language_model():
    for head_size, says in ((1, "reward model"), (7, "head was replaced")):
        config = GPTConfig(vocab_size=300, block_size=16, n_layer=1, n_head=2, n_embd=16, head_size=head_size)
        model = GPT(config)
        with pytest.raises(NotExportable, match=says):
            hf_state(model.state_dict(), model.config)
        with pytest.raises(NotExportable, match=says):
            hf_config(model.config, 0)


def test_an_untied_vocabulary_sized_head_and_biases_export_exactly(tmp_path):
    from safetensors.torch import save_file

    config = GPTConfig(vocab_size=300, block_size=16, n_layer=2, n_head=2, n_embd=16, bias=True, head_size=300)
    model = GPT(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    save_file(hf_state(model.state_dict(), config), tmp_path / "model.safetensors", metadata={"format": "pt"})
    (tmp_path / "config.json").write_text(json.dumps(hf_config(config, 0)), encoding="utf-8")
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    assert not hf.config.tie_word_embeddings
    x = torch.randint(0, 300, (2, 16))
    with torch.no_grad():
        assert torch.allclose(model(x)[0], hf(x).logits, atol=1e-4, rtol=0)


def test_a_reward_run_is_refused_by_the_cli_in_one_line(trained, cast, monkeypatch):
    from typer.testing import CliRunner

    from custody.cli.main import app
    from custody.evals.run_eval import resolve
    from custody.interop import export_model as module

    home, root, outcome = trained
    real = resolve(home, outcome.run_id)
    monkeypatch.setattr(module, "resolve", lambda h, target: replace(real, kind="reward"))
    size = home.ledger.size
    env = {"CUSTODY_KEY": str(cast.key_file("trainer"))}
    args = ["export-model", outcome.run_id, "--out", str(root / "reward"), "--home", str(home.path)]
    done = CliRunner().invoke(app, args, env=env)
    assert done.exit_code == 2 and "reward model" in done.stderr and "not a language model" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert home.ledger.size == size and not (root / "reward").exists()


# -- custody import-model ---------------------------------------------------------------------------


def hf_folder(path, tokenizer_json: bytes, activation: str = "gelu"):
    """A GPT-2 made by transformers itself (biases random, not zero), with custody's tokenizer."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=300, n_positions=32, n_embd=32, n_layer=2, n_head=2, activation_function=activation
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(path)
    (path / "tokenizer.json").write_bytes(tokenizer_json)
    return model


def test_an_export_imports_back_to_the_same_function_once(trained, cast):
    from custody.interop.import_model import import_model

    home, root, outcome = trained
    out = root / "round-trip"
    done = export_model(home, outcome.run_id, out)
    imported = import_model(home, out, "custody export of " + outcome.run_id, actor=cast.person(home, "trainer"))
    assert not imported.already and imported.license == "cc-by-4.0" and imported.license_category != "unknown"
    original, tokenizer = custody_model(home, done.model_digest)
    again, _ = custody_model(home, imported.model_digest)
    assert again.config.head_size is None and not again.config.bias
    x = torch.tensor([tokenizer.encode(TEXTS[0])[:32]])
    with torch.no_grad():
        assert torch.allclose(original(x)[0], again(x)[0], atol=1e-6, rtol=0)
    entry = query.body(query.latest(home.storage, "model.imported/"))
    assert entry["manifest_digest"] == manifest_digest(file_entries(out)) and entry["source"].startswith("custody")
    size = home.ledger.size
    assert import_model(home, out, "again").already and home.ledger.size == size


def test_a_transformers_gpt2_imports_with_its_license_and_the_same_logits(trained, cast):
    from typer.testing import CliRunner

    from custody.cli.main import app

    home, root, outcome = trained
    _, tokenizer = custody_model(home, resolve_digest(home, outcome.run_id))
    folder = root / "outside"
    hf = hf_folder(folder, tokenizer.data)
    env = {"CUSTODY_KEY": str(cast.key_file("trainer"))}
    h = ["--home", str(home.path)]
    done = CliRunner().invoke(
        app,
        ["import-model", str(folder), "--source", "https://example.org/m", "--license", "MIT", "--json", *h],
        env=env,
    )
    assert done.exit_code == 0, done.output
    body = json.loads(done.stdout)
    assert body["license_category"] == "permissive"
    model, _ = custody_model(home, body["model_digest"])
    assert model.config.bias
    x = torch.randint(0, 300, (2, 32))
    with torch.no_grad():
        assert torch.allclose(model(x)[0], hf(x).logits, atol=1e-4, rtol=0)


def resolve_digest(home, run_id):
    return query.body(query.latest(home.storage, "run.finished/", f"run:{run_id}"))["model_digest"]


def test_imports_custody_cannot_vouch_for_are_refused_in_one_line(trained, cast):
    from typer.testing import CliRunner

    from custody.cli.main import app

    home, root, outcome = trained
    _, tokenizer = custody_model(home, resolve_digest(home, outcome.run_id))
    approx = root / "gelu-new"
    hf_folder(approx, tokenizer.data, activation="gelu_new")
    plain = root / "unlicensed"
    hf_folder(plain, tokenizer.data)
    broken = root / "broken"
    hf_folder(broken, tokenizer.data)
    (broken / "model.safetensors").write_bytes((broken / "model.safetensors").read_bytes()[:64])
    env = {"CUSTODY_KEY": str(cast.key_file("trainer"))}
    h = ["--home", str(home.path)]
    size = home.ledger.size
    for args, says in (
        ([str(approx), "--license", "MIT"], "activation_function is 'gelu_new'"),
        ([str(plain)], "declares no license"),
        ([str(plain), "--license", "whatever I like"], "not an SPDX expression"),
        ([str(broken), "--license", "MIT"], "not a readable safetensors file"),
        ([str(root / "nowhere"), "--license", "MIT"], "is not a folder"),
    ):
        done = CliRunner().invoke(app, ["import-model", *args, "--source", "somewhere", *h], env=env)
        assert done.exit_code == 2 and says in done.stderr, done.output
        assert len(done.stderr.strip().splitlines()) == 1
    assert home.ledger.size == size


@pytest.mark.parametrize(("license", "decision"), [("GPL-3.0-only", "deny"), ("Apache-2.0", "allow")])
def test_an_imported_base_is_licensed_like_a_dataset_at_the_gate(trained, cast, license, decision):
    """Fine-tuning an imported model: the gate judges its license by the policy's license.allowed, as it
    judges the data's (the research policy here allows public-domain and permissive licenses only)."""
    from custody.interop.import_model import import_model

    home, root, outcome = trained
    _, tokenizer = custody_model(home, resolve_digest(home, outcome.run_id))
    folder = root / f"outside-{license}"
    model = hf_folder(folder, tokenizer.data)
    with torch.no_grad():  # other weights than every other import here, so a new import
        model.transformer.wte.weight[0, 0] += len(license)
    model.save_pretrained(folder)
    trainer = cast.person(home, "trainer")
    imported = import_model(home, folder, f"https://example.org/{license}", license=license, actor=trainer)
    policy = write(root / "policy-ft.toml", POLICY.format(approval=""))
    finetune = f'[finetune]\ncheckpoint = "sha256:{imported.model_digest}"\n'
    text = SPEC.format(name=f"ft-{license.lower()}", kind="finetune", policy=policy, extra=finetune)
    text = text.replace("[model]\nn_layer = 2\nn_head = 2\nn_embd = 32\nblock_size = 32\n", "")
    spec = write(root / f"ft-{license}.toml", text.replace("[tokenizer]\nvocab_size = 300\n", ""))
    done = run_spec(home, load_spec(spec), actor=trainer, say=lambda _: None)
    assert done.gate.decision.decision == decision
    start_model = [r for r in done.gate.decision.reasons if "start-model:" in r.finding]
    if decision == "deny":
        assert (
            start_model and license in start_model[0].message and imported.model_digest[:16] in start_model[0].message
        )
        assert done.run_id is None, "nothing trained"
    else:
        assert not start_model and done.exit_code == 0
        started = query.body(query.first(home.storage, "run.started/", f"run:{done.run_id}"))
        assert started["init_checkpoint_digest"] == imported.model_digest
