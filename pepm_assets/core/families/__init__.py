"""Model families: one file each, one registry, an estimator-like interface.

A family is a small object with explicit parameters (a pydantic model, validated from the entry's
`params` in configs/common/models.yml before anything runs), the name of the model format it
`reads` (a writer of formats/: "tsv", "spacy_docbin", "hf_jsonl"; prepare writes each format the
profile's families read, once) and two methods:

- `fit(data, model_dir)`: train on `data` (a `TrainData`: the train rows, and `formats`, the entry
  of meta_formats.json for the format it reads) and write everything needed to predict into
  `model_dir` (an empty temporary folder, swapped in atomically by the caller); return a dict of
  facts for meta_model.json (epochs, vocabulary size, device, ...). Its `class_weight` fact
  ("balanced", "none", ...: how classes were weighted in the fit) is stated in every report of the
  model; a family that leaves it out is reported as "not recorded".
- `predict(model_dir, texts)`: load what `fit` wrote and return one label per text (for an
  unsupervised family, one cluster id per text).

Optional: `top_terms(model_dir, k)` for linear models (most discriminative terms per class),
`embed(model_dir, texts)` for families that have document vectors, `scores(model_dir, texts)` for
families that can say how confident they are in each predicted label (evaluation writes them to
predictions.tsv's `score` column; the prediction drift report compares them across job sets), and
`predict_scores(model_dir, texts)` for families that score every class (`ClassScores`: evaluation
writes one `score_<class>` column per class and measures calibration: Brier, ECE, reliability
diagram). Built in: sklearn (predict_proba of logreg / complement_nb; LinearSVC's margins through a
softmax, marked MARGIN_SOFTMAX), spacy (textcat's `doc.cats`), hf (softmax of the logits), check
(the train label shares); cluster gives none.
No state is kept on the object between calls: train and evaluate are separate assets, often
separate processes. Heavy libraries (spaCy models, torch, transformers) are imported inside the
methods, never at module import.

To add a family (docs/internals.md, "Adding a model family"):
1. the module: a `Family` subclass with `reads` (and `params_model`, `fit`, `predict`);
2. one registry entry: in pepm, a line `"<name>": "<module>:<Class>"` in `BUILTIN` below; in a
   package of your own, an entry point `<name> = "<module>:<Class>"` of the group `pepm.families`
   (its pyproject.toml), then `pip install` it;
3. models.yml entries `{family: <name>, params: {...}}`.
Modules are imported when their family is first used (`REGISTRY.get`), never to list names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ..config.schema import HardwarePreset
from ..registry import Registry

if TYPE_CHECKING:  # annotations only; the functions that compute import them (CLI start-up, docs/internals.md)
    import pandas as pd


class FamilyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class TrainData:
    """What a family gets to train on; everything already resolved and seeded."""

    train: pd.DataFrame  # columns: doc_id, label, text, ... (train.tsv, maybe truncated)
    labels: list[str]  # every label of the view, sorted (train and job)
    seed: int
    hardware: HardwarePreset
    root: Path  # project root: `formats` paths are relative to it
    formats: dict[str, Any] = field(default_factory=dict)  # the entry of meta_formats.json for the format the family reads
    class_weights: dict[str, float] | None = None  # set when balance_strategy is class_weights

    def path(self, relative: str) -> Path:
        return self.root / relative


def save_estimator(obj: Any, path: Path) -> None:
    """Pickle a fitted scikit-learn object (protocol 5). Not joblib: its pickler is written in
    Python, and a TF-IDF vocabulary (a dict of ~60k terms) took 1.4 s to dump and 1.7 s to load
    with it, against 0.01 / 0.02 s with the C pickler. The file is our own output, read back by
    our own code: pickle's usual warning about untrusted files applies to model folders."""
    import pickle

    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=5)


def load_estimator(path: Path) -> Any:
    import pickle

    with open(path, "rb") as fh:
        return pickle.load(fh)


PROBABILITY = "probability"  # ClassScores.kind: a probability the model was fitted to give (log loss, softmax head, class shares)
MARGIN_SOFTMAX = "margin_softmax"  # ClassScores.kind: a softmax of margins fitted for a hinge loss, not to frequencies


@dataclass
class ClassScores:
    """Every class's score for each text (rows sum to 1): what evaluation writes as predictions.tsv's
    `score_<class>` columns and measures calibration on. `kind` says whether they are probabilities
    (PROBABILITY) or uncalibrated margins squashed by a softmax (MARGIN_SOFTMAX)."""

    classes: list[str]  # the columns of `matrix`
    matrix: Any  # numpy array (n_texts, n_classes)
    kind: str = PROBABILITY

    def of(self, labels: list[str]) -> list[float]:
        """The score of each text's label (`labels[i]`, e.g. the predicted one); 0 for a class the model lacks."""
        import numpy as np

        column = {c: j for j, c in enumerate(self.classes)}
        m = np.asarray(self.matrix, dtype=float)
        return [float(m[i, column[y]]) if y in column else 0.0 for i, y in enumerate(labels)]

    def aligned(self, labels: list[str]) -> Any:
        """The matrix with its columns in `labels` order (a class the model never saw: 0)."""
        import numpy as np

        m = np.asarray(self.matrix, dtype=float)
        out = np.zeros((m.shape[0], len(labels)))
        column = {c: j for j, c in enumerate(self.classes)}
        for k, label in enumerate(labels):
            if label in column:
                out[:, k] = m[:, column[label]]
        return out

    def rows(self, keep: Any) -> ClassScores:
        """The same scores for the rows selected by `keep` (a boolean mask or indices)."""
        import numpy as np

        return ClassScores(self.classes, np.asarray(self.matrix, dtype=float)[keep], self.kind)


class Family:
    reads: ClassVar[str]  # the model format `fit` is given (`TrainData.formats`): a formats.REGISTRY name
    params_model: ClassVar[type[FamilyParams]] = FamilyParams
    supervised: ClassVar[bool] = True
    # part of every model's version (core/lineage.py): bump `code_version` when a change to the
    # family changes what it fits; `hardware_fields` are the preset values that change the fit
    # (besides the family's own `max_train_docs` cap, always part of it)
    code_version: ClassVar[str] = "1"
    hardware_fields: ClassVar[tuple[str, ...]] = ()
    # True when `top_terms` gives the fitted model's own terms: the label-validity diagnostics then
    # need no log-odds terms of the view, and training computes them beside its fit (core/training.py)
    ranks_terms: ClassVar[bool] = False
    # the train.tsv columns `fit` reads, None for all: training then reads only these, the document
    # ids, the label, the dataset's source field and the split's group_by (at 40x MPT, leaving the
    # speaker, date and text-key columns unread takes `pepm run --stage train` from 2,093 to 1,730 MiB)
    train_columns: ClassVar[tuple[str, ...] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A family without `reads` fails here, where it is defined, not when prepare writes formats."""
        super().__init_subclass__(**kwargs)
        if not isinstance(getattr(cls, "reads", None), str):
            raise TypeError(f'family {cls.__qualname__} must declare the format it reads, e.g. `reads = "tsv"`')

    def __init__(self, params: FamilyParams) -> None:
        self.params = params

    def fit(self, data: TrainData, model_dir: Path) -> dict[str, Any]:
        raise NotImplementedError

    def predict(self, model_dir: Path, texts: list[str]) -> list[str]:
        raise NotImplementedError

    def top_terms(self, model_dir: Path, k: int = 20) -> dict[str, list[tuple[str, float]]] | None:
        return None

    def embed(self, model_dir: Path, texts: list[str]) -> Any:
        """Document vectors (for the silhouette of clusterings); None when the family has none."""
        return None

    def scores(self, model_dir: Path, texts: list[str]) -> list[float] | None:
        """The model's confidence in the label `predict` gives each text, in [0, 1] (e.g. the
        probability of the predicted class); None when the family has no such score."""
        return None

    def predict_scored(self, model_dir: Path, texts: list[str]) -> tuple[list[str], list[float] | None]:
        """(predict, scores) in one call: evaluation asks for both; a family whose scores come from
        the same pass as its labels overrides this to load and encode the texts once."""
        return self.predict(model_dir, texts), self.scores(model_dir, texts)

    def predict_scores(self, model_dir: Path, texts: list[str]) -> tuple[list[str], list[float] | None, ClassScores | None]:
        """(labels, confidence in each label, every class's score): what evaluation calls. A family
        that scores every class overrides it (one pass for all three); by default `predict_scored`
        and no class scores (evaluation then writes no calibration, and says why)."""
        labels, confidence = self.predict_scored(model_dir, texts)
        return labels, confidence, None


BUILTIN = {  # one line per family: name -> "module:Class", imported at first use
    "check": f"{__name__}.check:CheckFamily",
    "sklearn": f"{__name__}.sklearn:SklearnFamily",
    "spacy": f"{__name__}.spacy:SpacyFamily",
    "hf": f"{__name__}.hf:HfFamily",
    "cluster": f"{__name__}.cluster:ClusterFamily",
}
REGISTRY: Registry[type[Family]] = Registry("model family", BUILTIN, group="pepm.families")


def build(family: str, params: dict[str, Any]) -> Family:
    cls = REGISTRY.get(family)
    return cls(cls.params_model.model_validate(params))


def input_format(family: Family, meta_formats: dict[str, Any]) -> dict[str, Any]:
    """The entry of meta_formats.json for the format `family` reads; an error that names what was written instead."""
    written = meta_formats.get("formats", {})
    if family.reads not in written:
        raise ValueError(
            f"meta_formats.json has no {family.reads!r} format, which {type(family).__name__} reads: prepare wrote "
            f"{sorted(written)}, for the families {sorted(meta_formats.get('families', {}))}"
        )
    return written[family.reads]
