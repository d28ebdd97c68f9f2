"""hf: a transformer classifier trained with transformers + torch, fully offline.

Two starting points, both without any network access (`HF_HUB_OFFLINE` / `TRANSFORMERS_OFFLINE`
are set, every load passes `local_files_only=True`):

- `model_dir` given (a local folder, relative to the project root or absolute): tokenizer and
  model are loaded from it with AutoTokenizer / AutoModelForSequenceClassification, with this
  view's labels (a classification head of another size is re-initialised). A folder written by a
  previous `fit` works too, so a pepm model can be fine-tuned again.
- no `model_dir`: a BPE tokenizer is trained with `tokenizers` on the train texts only (NFC +
  lowercase, accents kept; `_train_tokenizer` says why not WordPiece), and a small BERT
  (`BertForSequenceClassification`) is built from the params (`hidden_size`, `num_layers`,
  `num_heads`, `intermediate_size`, ...), with 512 positions (or max_length if larger).

Training is a plain PyTorch loop rather than `transformers.Trainer`: it starts in milliseconds
instead of pulling in accelerate/datasets, every step is visible here (AdamW without decay on
biases/LayerNorm, linear warmup then decay, gradient accumulation, gradient clipping at 1.0,
autocast for bf16/fp16 with a GradScaler for fp16, class weights in the loss), and nothing is
written besides what `fit` saves. Batches are random (seeded permutation per epoch, no sorting
by length) and padded per batch to their longest text (dynamic padding), truncated to the
hardware preset's `max_length`; batch size and CPU threads come from the preset too.
No model selection: the model after the last of `epochs` passes is saved (no dev set, no best epoch
or checkpoint picked), so nothing is chosen on the job set, nor on valid.tsv (unlike spacy's model-best).

Device `auto` is CUDA when present, else CPU; mixed precision `auto` is bf16 on CUDA when the GPU
supports it, else fp16 on CUDA, and none on CPU. Reproducibility: `random`, `numpy` and torch
(CPU and CUDA) are seeded, the tokenizer training is reproducible, and on CPU
`torch.use_deterministic_algorithms` is switched on for the duration of the call (cheap there),
so the same data, seed and thread count give the same model and the same predictions.
On CUDA, reruns are close but not guaranteed bit-identical (cuBLAS/atomics).

`initializer_range` (BERT's 0.02 by default) matters for very small runs: a narrow model (hidden
32) given only a few dozen optimizer steps barely leaves chance level at 0.02, because the path
from the tokens to the [CLS] classifier goes through several near-zero matrices; 0.1-0.2 makes it
learn in a few steps. On real data (hidden 128, hundreds of steps) 0.02 is better: measured on
mpt/left_right, 0.088 cost about 0.03 macro-F1 in 3 epochs.

`fit` writes into `model_dir`: the model and tokenizer (`save_pretrained`) and `pepm_hf.json`
(the params, labels, max_length, batch size, threads and precision used by `predict`).
torch, transformers and tokenizers are imported inside functions, never at module import.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from .. import progress
from . import PROBABILITY, ClassScores, Family, FamilyParams, TrainData

log = logging.getLogger(__name__)

PEPM_FILE = "pepm_hf.json"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_ROBERTA_LIKE = {"roberta", "xlm-roberta", "camembert", "longformer", "xlm-roberta-xl"}  # 2 position ids reserved


class HfParams(FamilyParams):
    model_dir: str | None = Field(
        None, description="local pretrained model folder (relative to the project root or absolute); None: build a small model"
    )
    vocab_size: int = Field(8000, ge=100, description="BPE vocabulary trained on train (without model_dir); fewer when train is small")
    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(2, ge=1)
    intermediate_size: int | None = Field(None, ge=8, description="feed-forward size; None: 4 * hidden_size")
    initializer_range: float = Field(
        0.02, gt=0, le=1, description="std of the initial weights (without model_dir); see the module docstring"
    )
    epochs: int = Field(3, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    grad_accumulation: int = Field(1, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> HfParams:
        if self.model_dir is None and self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})")
        return self


# ---------------------------------------------------------------- helpers (torch passed in, never imported here)
def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _peak_rss_mb() -> float | None:
    """Peak resident memory of this process so far (not only of the fit), in MiB."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)  # bytes on macOS, KiB on Linux


def _device(torch: Any, requested: str) -> Any:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("hf: device 'cuda' requested but torch sees no CUDA device (use device: auto or cpu)")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(requested)


def _precision(torch: Any, requested: str, device: Any) -> str:
    if requested == "auto":
        if device.type != "cuda":
            return "no"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if requested == "fp16" and device.type != "cuda":
        raise RuntimeError("hf: mixed_precision 'fp16' needs CUDA; on CPU use 'bf16' or 'no'")
    if requested == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise RuntimeError("hf: this GPU does not support bf16; use 'fp16' or 'auto'")
    return requested


def _autocast(torch: Any, device: Any, precision: str) -> Any:
    if precision == "no":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


@contextlib.contextmanager
def _torch_settings(torch: Any, threads: int, device: Any, deterministic: bool):
    """Threads (and deterministic algorithms on CPU) for the duration of a call, restored after."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    if deterministic and device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)  # a warning, never a failure, for an op without one
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def _max_length(tokenizer: Any, config: Any, wanted: int) -> int:
    limits = [wanted]
    if 0 < getattr(tokenizer, "model_max_length", 0) < 100_000:
        limits.append(int(tokenizer.model_max_length))
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        limits.append(positions - 2 if getattr(config, "model_type", "") in _ROBERTA_LIKE else positions)
    return min(limits)


def _pad(torch: Any, seqs: list[list[int]], pad_id: int, device: Any) -> tuple[Any, Any]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids.to(device), mask.to(device)


def _read_train(data: TrainData) -> tuple[list[str], list[str], dict[str, int]]:
    """The first len(data.train) records of hf/train.jsonl (same order as train.tsv) and labels.json."""
    fmt = data.formats
    if fmt.get("format") != HfFamily.reads:
        raise ValueError(f"hf: expected the {HfFamily.reads!r} format in meta_formats.json, got {fmt.get('format')!r}")
    label2id = {str(k): int(v) for k, v in json.loads(data.path(fmt["label2id"]).read_text(encoding="utf-8"))["label2id"].items()}
    missing = sorted(set(data.labels) - set(label2id))
    if missing:
        raise ValueError(f"hf: labels {missing} are not in {fmt['label2id']}")
    n = len(data.train)
    with open(data.path(fmt["train"]), encoding="utf-8") as fh:
        records = [json.loads(line) for line in itertools.islice(fh, n)]
    if len(records) < n:
        raise ValueError(f"hf: {fmt['train']} has {len(records)} records, train has {n} documents")
    expected_ids = [str(d) for d in data.train["doc_id"]]
    expected_labels = [str(label) for label in data.train["label"]]
    for i, rec in enumerate(records):
        if str(rec["doc_id"]) != expected_ids[i] or rec["label"] != expected_labels[i]:
            raise ValueError(
                f"hf: {fmt['train']} line {i + 1} is {rec['doc_id']!r}/{rec['label']!r}, train.tsv row {i + 1} is {expected_ids[i]!r}/{expected_labels[i]!r} (stale formats?)"
            )
        if label2id[rec["label"]] != rec["label_id"]:
            raise ValueError(f"hf: {fmt['train']} line {i + 1}: label_id {rec['label_id']} disagrees with labels.json")
    return [r["text"] for r in records], [r["label"] for r in records], label2id


def _train_tokenizer(texts: list[str], vocab_size: int, model_max_length: int) -> Any:
    """A byte-pair tokenizer learned on `texts`: NFC + lowercase (accents kept), split on whitespace
    and punctuation, word starts marked with "▁" (SentencePiece style).

    BPE rather than WordPiece: tokenizers' WordPiece trainer numbers its "##" continuation tokens
    in hash-map order, which changes from process to process and breaks merge ties differently,
    so the same texts give different vocabularies (huggingface/tokenizers#1794). With no
    continuation prefix nor end-of-word suffix every initial symbol is a sorted alphabet
    character and the BPE merges are reproducible (checked across processes).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Punctuation(),
            pre_tokenizers.Metaspace(prepend_scheme="always", split=False),
        ]
    )
    tok.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS, show_progress=False)
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok.decoder = decoders.Metaspace(prepend_scheme="always", split=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
    )


def _seed(torch: Any, seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        torch.cuda.reset_peak_memory_stats()


def _load_model(p: HfParams, root: Path, texts: list[str], label2id: dict[str, int], max_length: int) -> tuple[Any, Any]:
    """(tokenizer, model): from `p.model_dir` with a head for these labels, else a BPE tokenizer
    trained on `texts` and a small BERT built from the params."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification

    id2label = {i: label for label, i in label2id.items()}
    if p.model_dir is not None:
        source = Path(p.model_dir).expanduser()
        source = source if source.is_absolute() else root / source
        if not source.is_dir():
            raise FileNotFoundError(f"hf: model_dir {p.model_dir!r} is not a folder ({source})")
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            source,
            local_files_only=True,
            num_labels=len(label2id),
            id2label=id2label,
            label2id=label2id,
            ignore_mismatched_sizes=True,
        )
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
    else:
        positions = max(512, max_length)
        tokenizer = _train_tokenizer(texts, p.vocab_size, positions)
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=p.hidden_size,
            num_hidden_layers=p.num_layers,
            num_attention_heads=p.num_heads,
            intermediate_size=p.intermediate_size or 4 * p.hidden_size,
            max_position_embeddings=positions,
            pad_token_id=tokenizer.pad_token_id,
            initializer_range=p.initializer_range,
            num_labels=len(label2id),
            id2label=id2label,
            label2id=label2id,
        )
        model = BertForSequenceClassification(config)
    model.config.problem_type = "single_label_classification"
    return tokenizer, model


def _encode(tokenizer: Any, texts: list[str], max_length: int) -> tuple[list[list[int]], int]:
    """Token ids truncated to `max_length`, and how many texts were longer."""
    encoded = tokenizer(texts, truncation=False, verbose=False)["input_ids"]
    n_truncated = sum(len(ids) > max_length for ids in encoded)
    if n_truncated:
        encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return encoded, n_truncated


def _loss_weights(torch: Any, class_weights: dict[str, float] | None, label2id: dict[str, int], device: Any) -> Any:
    """The view's class weights as a tensor in label-id order (None: unweighted loss)."""
    if not class_weights:
        return None
    labels = sorted(label2id, key=label2id.__getitem__)
    return torch.tensor([float(class_weights.get(label, 1.0)) for label in labels], device=device)


def _optimizer(torch: Any, model: Any, p: HfParams, total_steps: int) -> tuple[Any, Any]:
    """AdamW without weight decay on biases and norms, linear warmup then decay."""
    from transformers import get_linear_schedule_with_warmup

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    named = [(n, q) for n, q in model.named_parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [q for n, q in named if not n.endswith(no_decay)], "weight_decay": p.weight_decay},
            {"params": [q for n, q in named if n.endswith(no_decay)], "weight_decay": 0.0},
        ],
        lr=p.learning_rate,
    )
    return optimizer, get_linear_schedule_with_warmup(optimizer, round(p.warmup_ratio * total_steps), total_steps)


def _train(
    torch: Any,
    model: Any,
    encoded: list[list[int]],
    targets: list[int],
    *,
    pad_id: int,
    weights: Any,
    p: HfParams,
    batch_size: int,
    seed: int,
    device: Any,
    precision: str,
) -> dict[str, Any]:
    """The training loop: seeded random batches, gradient accumulation over `p.grad_accumulation`
    batches (the loss weighted by batch size), clipping at 1.0. Returns its facts for meta_model.json."""
    import numpy as np

    started = time.perf_counter()
    n, bs, ga = len(encoded), batch_size, p.grad_accumulation
    steps_per_epoch = math.ceil(math.ceil(n / bs) / ga)
    optimizer, scheduler = _optimizer(torch, model, p, steps_per_epoch * p.epochs)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    rng = np.random.default_rng(seed)
    y_tensor = torch.tensor(targets, dtype=torch.long)
    epoch_losses: list[float] = []
    steps = 0
    model.train()
    for epoch in range(p.epochs):
        te = time.perf_counter()
        order = rng.permutation(n)
        batches = [order[i : i + bs] for i in range(0, n, bs)]
        running = torch.zeros((), device=device)
        for g in range(0, len(batches), ga):
            group = batches[g : g + ga]
            group_docs = sum(len(b) for b in group)
            for batch in group:
                ids, mask = _pad(torch, [encoded[i] for i in batch], pad_id, device)
                target = y_tensor[batch].to(device)
                with _autocast(torch, device, precision):
                    logits = model(input_ids=ids, attention_mask=mask).logits
                loss = torch.nn.functional.cross_entropy(logits.float(), target, weight=weights)
                scaler.scale(loss * (len(batch) / group_docs)).backward()
                running += loss.detach() * len(batch)
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            steps += 1
            progress.note(f"epoch {epoch + 1}/{p.epochs}, step {steps - epoch * steps_per_epoch}/{steps_per_epoch}")
        epoch_losses.append(round(float(running) / n, 5))
        log.info(
            "hf epoch %d/%d: loss %.4f (%d steps, %.1f s)", epoch + 1, p.epochs, epoch_losses[-1], steps_per_epoch, time.perf_counter() - te
        )
    model.eval()
    return {
        "epochs": p.epochs,
        "steps": steps,
        "steps_per_epoch": steps_per_epoch,
        "batch_size": bs,
        "grad_accumulation": ga,
        "effective_batch_size": bs * ga,
        "train_loss": epoch_losses[-1],
        "epoch_losses": epoch_losses,
        "train_seconds": round(time.perf_counter() - started, 2),
    }


def _save(model_dir: Path, model: Any, tokenizer: Any, for_predict: dict[str, Any]) -> None:
    """Model and tokenizer (save_pretrained), and pepm_hf.json: what `predict` needs besides them."""
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    (model_dir / PEPM_FILE).write_text(json.dumps(for_predict, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


class HfFamily(Family):
    reads = "hf_jsonl"
    hardware_fields = ("batch_size", "max_length", "threads")  # torch sums in thread order
    params_model = HfParams
    params: HfParams

    # ------------------------------------------------------------ fit
    def fit(self, data: TrainData, model_dir: Path) -> dict[str, Any]:
        _offline()
        start, cpu_start = time.perf_counter(), time.process_time()
        import tokenizers
        import torch
        import transformers

        import_seconds = time.perf_counter() - start
        transformers.utils.logging.disable_progress_bar()
        p, hw = self.params, data.hardware
        os.environ.setdefault("RAYON_NUM_THREADS", str(hw.threads))  # tokenizers' thread pool, bounded like torch
        device = _device(torch, p.device)
        precision = _precision(torch, p.mixed_precision, device)

        texts, labels, label2id = _read_train(data)
        if len(label2id) < 2:
            raise ValueError(f"hf: needs at least 2 labels, got {sorted(label2id)}")
        _seed(torch, data.seed)

        with _torch_settings(torch, hw.threads, device, deterministic=True):
            t0 = time.perf_counter()
            tokenizer, model = _load_model(p, data.root, texts, label2id, hw.max_length)
            tokenizer_seconds = time.perf_counter() - t0
            max_length = _max_length(tokenizer, model.config, hw.max_length)
            encoded, n_truncated = _encode(tokenizer, texts, max_length)
            model.to(device)
            weights = _loss_weights(torch, data.class_weights, label2id, device)
            loop = _train(
                torch,
                model,
                encoded,
                [label2id[label] for label in labels],
                pad_id=tokenizer.pad_token_id,
                weights=weights,
                p=p,
                batch_size=hw.batch_size,
                seed=data.seed,
                device=device,
                precision=precision,
            )
            for_predict = {
                "params": p.model_dump(mode="json"),
                "labels": sorted(label2id, key=label2id.__getitem__),
                "max_length": max_length,
                "batch_size": hw.batch_size,
                "threads": hw.threads,
                "mixed_precision": precision,
                "seed": data.seed,
            }
            _save(Path(model_dir), model, tokenizer, for_predict)

        return {
            "source": "model_dir" if p.model_dir is not None else "scratch",
            "base_model_dir": p.model_dir,
            "architecture": type(model).__name__,
            "device": device.type,
            "mixed_precision": precision,
            **loop,
            "max_length": max_length,
            "threads": hw.threads,
            "n_train_docs": len(encoded),
            "n_truncated_docs": n_truncated,
            "class_weights": bool(weights is not None),
            "class_weight": "balanced" if weights is not None else "none",  # the balance strategy's n / (k * n_c) in the loss
            "seconds": round(time.perf_counter() - start, 2),
            "cpu_seconds": round(time.process_time() - cpu_start, 2),  # all threads; wall time varies on a shared machine
            "import_seconds": round(import_seconds, 2),
            "tokenizer_seconds": round(tokenizer_seconds, 2),
            "peak_rss_mb": _peak_rss_mb(),
            "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda" else None,
            "n_parameters": sum(q.numel() for q in model.parameters()),
            "initializer_range": getattr(model.config, "initializer_range", None),
            "vocab_size": len(tokenizer),
            "seed": data.seed,
            "torch_version": torch.__version__,
            "transformers_version": transformers.__version__,
            "tokenizers_version": tokenizers.__version__,
        }

    # ------------------------------------------------------------ predict
    def predict(self, model_dir: Path, texts: list[str]) -> list[str]:
        return self.predict_scores(model_dir, texts)[0]

    def predict_scored(self, model_dir: Path, texts: list[str]) -> tuple[list[str], list[float] | None]:
        return self.predict_scores(model_dir, texts)[:2]

    def predict_scores(self, model_dir: Path, texts: list[str]) -> tuple[list[str], list[float], ClassScores]:
        """Labels (argmax of the logits), the probability of each and every class's: a softmax of
        the logits in float32 (the head is fitted with cross-entropy on that softmax)."""
        _offline()
        import numpy as np
        import torch
        import transformers
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        transformers.utils.logging.disable_progress_bar()
        model_dir = Path(model_dir)
        saved = json.loads((model_dir / PEPM_FILE).read_text(encoding="utf-8"))
        labels: list[str] = saved["labels"]
        if not texts:
            return [], [], ClassScores(list(labels), np.zeros((0, len(labels))), PROBABILITY)
        os.environ.setdefault("RAYON_NUM_THREADS", str(saved["threads"]))
        device = _device(torch, saved["params"].get("device", "auto"))
        precision = saved["mixed_precision"] if device.type == "cuda" else "no"
        with _torch_settings(torch, saved["threads"], device, deterministic=False):
            tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True).to(device).eval()
            encoded = tokenizer([str(t) for t in texts], truncation=True, max_length=saved["max_length"])["input_ids"]
            order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))  # length-sorted batches: less padding
            predicted = [0] * len(encoded)
            probs = np.zeros((len(encoded), len(labels)))
            bs = saved["batch_size"]
            with torch.inference_mode():
                for k in range(0, len(order), bs):
                    batch = order[k : k + bs]
                    ids, mask = _pad(torch, [encoded[i] for i in batch], tokenizer.pad_token_id, device)
                    with _autocast(torch, device, precision):
                        logits = model(input_ids=ids, attention_mask=mask).logits
                    for i, label_id in zip(batch, logits.argmax(dim=-1).tolist()):
                        predicted[i] = label_id
                    probs[batch] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        scored = ClassScores(list(labels), probs, PROBABILITY)
        names = [labels[i] for i in predicted]
        return names, scored.of(names), scored
