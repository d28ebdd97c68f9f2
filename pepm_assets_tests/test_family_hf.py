"""The hf family on a tiny separable set: offline, small, seeded, on CPU (a few seconds of training).

The set is written with the hf format writer itself (formats/hf.py), so the family reads exactly
what `prepare` produces: hf/train.jsonl, hf/job.jsonl and hf/labels.json under data/processed.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch  # noqa: F401  (installed by `make setup`: the hf extra)
import transformers  # noqa: F401
import yaml
from pydantic import ValidationError

from pepm_assets.core import progress
from pepm_assets.core.config import HardwarePreset, ResolvedParams
from pepm_assets.core.families import REGISTRY, TrainData, build
from pepm_assets.core.formats.hf import hf_jsonl
from pepm_assets.core.paths import ProjectPaths
from pepm_assets_tests.fixtures import LEFT_WORDS, REPO, RIGHT_WORDS

LABELS = ["left", "right"]
SHARED = ["monsieur", "le", "ministre", "nous", "pensons", "que", "cette", "loi", "pour", "la", "république", "doit"]
HW = HardwarePreset(threads=1, batch_size=8, max_length=32)
TINY = {"vocab_size": 300, "hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "epochs": 8, "learning_rate": 3e-3}


def _texts(n: int, seed: int, prefix: str) -> pd.DataFrame:
    """Half left, half right; shared filler words plus 6 words of the side's own vocabulary; one
    text in ten is long (over max_length tokens) so truncation is exercised."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = LABELS[i % 2]
        own = LEFT_WORDS if label == "left" else RIGHT_WORDS
        words = rng.sample(SHARED, 5) + [rng.choice(own) for _ in range(6)]
        rng.shuffle(words)
        if i % 10 == 3:
            words = words * 4
        rows.append((f"{prefix}:{i:03d}", label, "Intervention : " + " ".join(words) + "."))
    return pd.DataFrame(rows, columns=["doc_id", "label", "text"])


@dataclass
class Tiny:
    root: Path
    formats: dict
    train: pd.DataFrame
    job: pd.DataFrame

    def data(self, seed: int = 0, train: pd.DataFrame | None = None, **kw) -> TrainData:
        return TrainData(
            train=self.train if train is None else train, labels=LABELS, seed=seed, hardware=HW, root=self.root, formats=self.formats, **kw
        )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    root = tmp_path_factory.mktemp("hf_project")
    train, job = _texts(80, seed=1, prefix="t"), _texts(40, seed=2, prefix="j")
    out_dir = root / "data" / "processed" / "tiny" / "left_right"
    # hf_jsonl reads nothing from the resolved params: an unvalidated instance is enough here
    labels = sorted(set(train["label"]) | set(job["label"]))
    formats = hf_jsonl(train, job, out_dir, ResolvedParams.model_construct(), ProjectPaths(root), labels)
    return Tiny(root, formats, train, job)


@pytest.fixture(scope="module")
def fitted(tiny: Tiny) -> tuple[Path, dict, list[str]]:
    model_dir = tiny.root / "models" / "first"
    family = build("hf", TINY)
    with progress.listening(NOTES.append):
        meta = family.fit(tiny.data(seed=0), model_dir)
    return model_dir, meta, family.predict(model_dir, list(tiny.job["text"]))


NOTES: list[str] = []  # the progress notes of the `fitted` model's training (core/progress.py)


def test_training_notes_each_step_of_each_epoch(fitted: tuple[Path, dict, list[str]]) -> None:
    _, meta, _ = fitted
    epochs, per_epoch = meta["epochs"], meta["steps_per_epoch"]
    expected = [f"epoch {e}/{epochs}, step {s}/{per_epoch}" for e in range(1, epochs + 1) for s in range(1, per_epoch + 1)]
    assert expected == NOTES  # every step of every epoch, in order


def _accuracy(pred: list[str], gold: pd.Series) -> float:
    return sum(p == g for p, g in zip(pred, gold)) / len(pred)


# ---------------------------------------------------------------- import and params
def test_module_import_stays_light() -> None:
    code = (
        "import sys, pepm_assets.core.families.hf as hf\n"
        "from pepm_assets.core.families import REGISTRY\n"
        "assert REGISTRY.get('hf') is hf.HfFamily\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'tokenizers', 'safetensors') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing the hf family imported {out.stdout.strip()}"


def test_params_validated_before_anything_runs() -> None:
    cls = REGISTRY.get("hf")
    params = cls.params_model.model_validate({})
    assert (params.model_dir, params.intermediate_size, params.mixed_precision, params.device) == (None, None, "auto", "auto")
    assert (params.grad_accumulation, params.weight_decay, params.warmup_ratio, params.initializer_range) == (1, 0.01, 0.1, 0.02)
    models_yml = yaml.safe_load((REPO / "configs" / "common" / "models.yml").read_text(encoding="utf-8"))
    for entry in models_yml["models"].values():
        if entry["family"] == "hf":
            build("hf", entry.get("params", {}))
    with pytest.raises(ValidationError):
        build("hf", {"hidden_size": 30, "num_heads": 4})
    with pytest.raises(ValidationError):
        build("hf", {"mixed_precision": "fp8"})
    with pytest.raises(ValidationError):
        build("hf", {"epoch": 3})


# ---------------------------------------------------------------- training from scratch
def test_fit_predict_learns_the_tiny_set(tiny: Tiny, fitted: tuple[Path, dict, list[str]]) -> None:
    model_dir, _meta, pred = fitted
    assert len(pred) == len(tiny.job) and set(pred) <= set(LABELS)
    assert _accuracy(pred, tiny.job["label"]) >= 0.9
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "pepm_hf.json"):
        assert (model_dir / name).is_file(), name
    saved = json.loads((model_dir / "pepm_hf.json").read_text(encoding="utf-8"))
    assert saved["labels"] == LABELS and saved["max_length"] == HW.max_length and saved["params"]["hidden_size"] == 32
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    assert config["id2label"] == {"0": "left", "1": "right"} and config["max_position_embeddings"] >= HW.max_length


def test_meta_facts(tiny: Tiny, fitted: tuple[Path, dict, list[str]]) -> None:
    import tokenizers

    _, meta, _ = fitted
    assert meta["source"] == "scratch" and meta["device"] == "cpu" and meta["mixed_precision"] == "no"
    assert meta["epochs"] == 8 and meta["steps_per_epoch"] == math.ceil(80 / 8) and meta["steps"] == 8 * 10
    assert meta["n_train_docs"] == 80 and meta["batch_size"] == 8 and meta["max_length"] == 32 and meta["threads"] == 1
    assert 0 < meta["n_truncated_docs"] < 80  # the long texts, and only them
    assert len(meta["epoch_losses"]) == 8 and meta["train_loss"] == meta["epoch_losses"][-1] < meta["epoch_losses"][0] / 2
    assert 5 < meta["vocab_size"] <= 300 and 0 < meta["n_parameters"] < 100_000
    assert meta["initializer_range"] == 0.02
    assert meta["seconds"] > 0 and meta["peak_rss_mb"] > 50 and meta["peak_gpu_memory_mb"] is None
    assert (meta["torch_version"], meta["transformers_version"], meta["tokenizers_version"]) == (
        torch.__version__,
        transformers.__version__,
        tokenizers.__version__,
    )
    json.dumps(meta)  # goes into meta_model.json as is


def test_same_seed_same_model(tiny: Tiny, fitted: tuple[Path, dict, list[str]], tmp_path: Path) -> None:
    first_dir, first_meta, first_pred = fitted
    family = build("hf", TINY)
    meta = family.fit(tiny.data(seed=0), tmp_path / "again")
    assert meta["epoch_losses"] == first_meta["epoch_losses"]
    assert family.predict(tmp_path / "again", list(tiny.job["text"])) == first_pred
    assert (tmp_path / "again" / "tokenizer.json").read_bytes() == (first_dir / "tokenizer.json").read_bytes()
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (first_dir / "model.safetensors").read_bytes()


def test_truncated_train_uses_the_first_records_and_checks_them(tiny: Tiny, tmp_path: Path) -> None:
    # the caller caps train to max_train_docs_hf by taking its first rows; options exercised on the way:
    # gradient accumulation (uneven last group), class weights, bf16 autocast on CPU
    family = build("hf", {**TINY, "epochs": 2, "grad_accumulation": 3, "mixed_precision": "bf16"})
    meta = family.fit(tiny.data(train=tiny.train.head(40), class_weights={"left": 2.0, "right": 1.0}), tmp_path / "m")
    assert meta["n_train_docs"] == 40 and meta["steps_per_epoch"] == math.ceil(5 / 3) and meta["steps"] == 4
    assert meta["effective_batch_size"] == 24 and meta["class_weights"] is True and meta["mixed_precision"] == "bf16"
    assert set(family.predict(tmp_path / "m", ["égalité des droits", ""])) <= set(LABELS)
    assert family.predict(tmp_path / "m", []) == []

    stale = tiny.train.iloc[::-1].reset_index(drop=True)  # train.tsv and train.jsonl out of step
    with pytest.raises(ValueError, match="stale"):
        family.fit(tiny.data(train=stale), tmp_path / "stale")


def test_unavailable_device_or_precision_fails_clearly(tiny: Tiny, tmp_path: Path) -> None:

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match="cuda"):
        build("hf", {**TINY, "device": "cuda"}).fit(tiny.data(), tmp_path / "a")
    with pytest.raises(RuntimeError, match="fp16"):
        build("hf", {**TINY, "mixed_precision": "fp16"}).fit(tiny.data(), tmp_path / "b")


# ---------------------------------------------------------------- from a local model directory
def test_fine_tune_from_a_local_model_dir(tiny: Tiny, fitted: tuple[Path, dict, list[str]], tmp_path: Path) -> None:
    first_dir, first_meta, _ = fitted
    relative = str(first_dir.relative_to(tiny.root))  # relative to the project root
    family = build("hf", {"model_dir": relative, "epochs": 2, "learning_rate": 1e-3})
    meta = family.fit(tiny.data(seed=1), tmp_path / "tuned")
    assert meta["source"] == "model_dir" and meta["base_model_dir"] == relative
    assert meta["vocab_size"] == first_meta["vocab_size"] and meta["n_parameters"] == first_meta["n_parameters"]
    assert meta["epoch_losses"][0] < first_meta["epoch_losses"][0]  # starts from a trained model
    pred = family.predict(tmp_path / "tuned", list(tiny.job["text"]))
    assert _accuracy(pred, tiny.job["label"]) >= 0.9
    assert (tmp_path / "tuned" / "tokenizer.json").read_bytes() == (first_dir / "tokenizer.json").read_bytes()

    with pytest.raises(FileNotFoundError, match="model_dir"):
        build("hf", {"model_dir": "models/nowhere"}).fit(tiny.data(), tmp_path / "x")
