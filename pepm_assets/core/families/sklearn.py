"""scikit-learn family: TF-IDF (word n-grams, sublinear tf; optionally character n-grams too) + a
linear classifier.

`estimator`: linear_svc (LinearSVC), logreg (LogisticRegression) or complement_nb (ComplementNB,
the naive Bayes variant that copes with unbalanced classes, and has no class weights).
`class_weight` of the linear estimators: `auto` (the default) is scikit-learn's "balanced" when the
training set is imbalanced (its largest class over its smallest > `imbalance_ratio`, 1.2 by
default) or the view's balance strategy is class_weights, else none (unweighted, a linear model
under-predicts the smaller class: its recall, and macro-F1, pay). `balanced` / `none` force it.
The value used is recorded in the fit facts (meta_model.json) and every report of the model.
`char_ngram_max` adds TF-IDF features of character n-grams within words (`char_wb`), which catch
morphology and spelling that word n-grams split apart (useful on short parliamentary turns).
Word n-grams are counted by pepm's compiled counter, character n-grams by scikit-learn on
`hardware.threads` processes for large inputs (`counting.fast_counting`: same model, plain
scikit-learn objects in model.pkl).
Class scores at predict time (`predict_scores`, evaluation's `score_<class>` columns and
calibration): predict_proba for logreg (tfidf_logreg in models.yml) and complement_nb (tfidf_nb);
LinearSVC (tfidf_svm_quick, tfidf_wordchar_svm) has none, so a softmax of its decision_function
margins, marked MARGIN_SOFTMAX (uncalibrated: its Brier / ECE are reported under other names).
`dual` (LinearSVC's liblinear solver): True, the default, is the dual coordinate descent, the fast
one on TF-IDF text; scikit-learn's own default "auto" takes the primal Newton solver whenever
there are more documents than features, which is 13x slower here: MPT x40 (342,841 documents x
185,377 features) fits in 14.3 s dual vs 190.7 s primal (36 vs 57 iterations), with identical
predictions on its 85,760 job documents (benchmarks/README.md). Both solve the same strictly
convex problem, so they agree up to the solver's tolerance.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ..atomic import write_json
from . import MARGIN_SOFTMAX, PROBABILITY, ClassScores, Family, FamilyParams, TrainData, load_estimator, save_estimator

MODEL_FILE = "model.pkl"
TOP_TERMS_FILE = "top_terms.json"
TOP_TERMS_KEPT = 50  # ranked at fit time; evaluation reports the first k
IMBALANCE_RATIO = 1.2  # class_weight auto: "balanced" when the largest train class outnumbers the smallest by more


class SklearnParams(FamilyParams):
    estimator: Literal["linear_svc", "logreg", "complement_nb"] = "linear_svc"
    ngram_min: int = Field(1, ge=1)
    ngram_max: int = Field(2, ge=1)
    sublinear_tf: bool = True
    lowercase: bool = True
    min_df: int = Field(2, ge=1)
    max_df: float = Field(1.0, gt=0, le=1)
    max_features: int | None = Field(None, ge=1)
    char_ngram_min: int = Field(2, ge=1)
    char_ngram_max: int | None = Field(None, ge=1)  # None: word n-grams only
    char_max_features: int | None = Field(300_000, ge=1)
    C: float = Field(1.0, gt=0)
    alpha: float = Field(1.0, gt=0)
    class_weight: Literal["auto", "balanced", "none"] = "auto"
    imbalance_ratio: float = Field(IMBALANCE_RATIO, ge=1.0)  # class_weight auto: largest / smallest train class above it -> balanced
    max_iter: int = Field(2000, ge=1)
    dual: bool | Literal["auto"] = True  # linear_svc only; see the module docstring


def build_pipeline(params: SklearnParams, seed: int, class_weight: str | None):
    """The estimator as a plain scikit-learn Pipeline (also what benchmarks/ compare against)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import ComplementNB
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC

    vectorizer = TfidfVectorizer(
        ngram_range=(params.ngram_min, params.ngram_max),
        sublinear_tf=params.sublinear_tf,
        lowercase=params.lowercase,
        min_df=params.min_df,
        max_df=params.max_df,
        max_features=params.max_features,
    )
    if params.char_ngram_max is not None:
        from sklearn.pipeline import FeatureUnion

        chars = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(params.char_ngram_min, params.char_ngram_max),
            sublinear_tf=params.sublinear_tf,
            lowercase=params.lowercase,
            min_df=params.min_df,
            max_df=params.max_df,
            max_features=params.char_max_features,
        )
        vectorizer = FeatureUnion([("word", vectorizer), ("char", chars)])
    if params.estimator == "linear_svc":
        clf = LinearSVC(C=params.C, class_weight=class_weight, random_state=seed, max_iter=params.max_iter, dual=params.dual)
    elif params.estimator == "logreg":
        clf = LogisticRegression(C=params.C, class_weight=class_weight, random_state=seed, max_iter=params.max_iter)
    else:
        clf = ComplementNB(alpha=params.alpha)
    return Pipeline([("tfidf", vectorizer), ("clf", clf)])


def resolve_class_weight(params: SklearnParams, labels: list[str], strategy_weights: dict[str, float] | None) -> str | None:
    """The class_weight the estimator is fitted with ("balanced" or None), from the `class_weight`
    setting and the training labels (`auto`, see the module docstring). ComplementNB takes none."""
    if params.estimator == "complement_nb" or params.class_weight == "none":
        return None
    if params.class_weight == "balanced" or strategy_weights:
        return "balanced"
    return "balanced" if class_ratio(labels) > params.imbalance_ratio else None


def class_ratio(labels: list[str]) -> float:
    """The largest class count over the smallest (1.0: balanced, or a single class)."""
    counts = Counter(labels).values()
    return max(counts) / min(counts) if counts else 1.0


class SklearnFamily(Family):
    reads = "tsv"
    train_columns = ("text", "label")
    hardware_fields = ()
    params_model = SklearnParams
    ranks_terms = True  # top_terms.json, written by `fit`
    # 2: class_weight auto follows the training set's imbalance (was: the balance strategy only);
    # 3: LinearSVC's dual solver by default (was scikit-learn's "auto": the primal one on large sets)
    code_version = "3"

    def fit(self, data: TrainData, model_dir: Path) -> dict[str, Any]:
        from threadpoolctl import threadpool_limits

        from .counting import fast_counting

        p: SklearnParams = self.params  # type: ignore[assignment]
        labels = data.train["label"].tolist()
        class_weight = resolve_class_weight(p, labels, data.class_weights)
        pipeline = build_pipeline(p, data.seed, class_weight)
        with threadpool_limits(data.hardware.threads), fast_counting(_vectorizers(pipeline), data.hardware.threads):
            pipeline.fit(data.train["text"].tolist(), labels)
        save_estimator(pipeline, model_dir / MODEL_FILE)
        # ranked now, with the fitted pipeline in memory, rather than by reloading it at evaluation
        write_json(model_dir / TOP_TERMS_FILE, discriminative_terms(pipeline, TOP_TERMS_KEPT))
        return {
            "n_features": sum(len(v) for _, v, _ in _vocabularies(pipeline)),
            "class_weight": class_weight or "none",
            "train_class_ratio": round(class_ratio(labels), 4),
            "estimator": p.estimator,
            **_solver_facts(pipeline.named_steps["clf"], p),
        }

    def predict(self, model_dir: Path, texts: list[str]) -> list[str]:
        from .counting import fast_counting

        pipeline = load_estimator(model_dir / MODEL_FILE)
        with fast_counting(_vectorizers(pipeline), n_jobs=1):  # compiled, one process: a job set is small
            return [str(y) for y in pipeline.predict(texts)]

    def scores(self, model_dir: Path, texts: list[str]) -> list[float] | None:
        """The probability of the predicted class (predict_proba: logreg, complement_nb); for
        LinearSVC, which has none, a softmax over its decision_function (a binary model's single
        margin m as the two margins -m/2, +m/2, i.e. a sigmoid of m): see `class_scores`."""
        return self.predict_scores(model_dir, texts)[1]

    def predict_scored(self, model_dir: Path, texts: list[str]) -> tuple[list[str], list[float] | None]:
        return self.predict_scores(model_dir, texts)[:2]

    def predict_scores(self, model_dir: Path, texts: list[str]) -> tuple[list[str], list[float], ClassScores]:
        """Labels, confidence in each and every class's score from one load and one vectorization."""
        from .counting import fast_counting

        pipeline = load_estimator(model_dir / MODEL_FILE)
        with fast_counting(_vectorizers(pipeline), n_jobs=1):
            features = pipeline[:-1].transform(texts)
        estimator = pipeline.steps[-1][1]
        labels = [str(y) for y in estimator.predict(features)]
        scored = class_scores(estimator, features)
        return labels, scored.of(labels), scored

    def top_terms(self, model_dir: Path, k: int = 20) -> dict[str, list[tuple[str, float]]] | None:
        path = model_dir / TOP_TERMS_FILE
        if not path.is_file():
            return None
        return {
            label: [(term, weight) for term, weight in terms[:k]] for label, terms in json.loads(path.read_text(encoding="utf-8")).items()
        }


def _solver_facts(estimator: Any, params: SklearnParams) -> dict[str, Any]:
    """The solver's iterations (LinearSVC, LogisticRegression) and, for LinearSVC, which solver ran:
    a fit that hit max_iter, or a slow primal fit, shows in meta_model.json."""
    facts: dict[str, Any] = {}
    n_iter = getattr(estimator, "n_iter_", None)
    if n_iter is not None:
        facts["n_iter"] = int(max(n_iter) if hasattr(n_iter, "__len__") else n_iter)
        facts["max_iter"] = params.max_iter
    if params.estimator == "linear_svc":
        facts["dual"] = params.dual
    return facts


def class_scores(estimator: Any, features: Any) -> ClassScores:
    """Every class's score for each text: predict_proba where the estimator has it (logreg, fitted
    for log loss; complement_nb, its normalised joint likelihood), else (LinearSVC, fitted for a
    hinge loss) a softmax over decision_function, marked MARGIN_SOFTMAX: rows sum to 1 and rank
    like the margins, but their scale is set by C and the hinge, never fitted to frequencies."""
    import numpy as np

    classes = [str(c) for c in estimator.classes_]
    if hasattr(estimator, "predict_proba"):
        return ClassScores(classes, np.asarray(estimator.predict_proba(features), dtype=float), PROBABILITY)
    margins = np.asarray(estimator.decision_function(features), dtype=float)
    if margins.ndim == 1:  # binary: one margin, positive = classes_[1]
        margins = np.column_stack([-margins / 2, margins / 2])
    margins = margins - margins.max(axis=1, keepdims=True)
    exp = np.exp(margins)
    return ClassScores(classes, exp / exp.sum(axis=1, keepdims=True), MARGIN_SOFTMAX)


def discriminative_terms(pipeline: Any, k: int) -> dict[str, list[tuple[str, float]]]:
    """The k heaviest terms of each class: linear weights (one-vs-rest; binary: +/- the single row),
    or for naive Bayes the log-probability margin of a class over the mean of the others."""
    import numpy as np

    clf = pipeline.named_steps["clf"]
    classes = [str(c) for c in clf.classes_]
    if hasattr(clf, "coef_"):
        weights = clf.coef_.toarray() if hasattr(clf.coef_, "toarray") else np.asarray(clf.coef_)
        if weights.shape[0] == 1:  # binary: one row, positive = classes[1]
            weights = np.vstack([-weights[0], weights[0]])
    else:
        logp = clf.feature_log_prob_
        weights = logp - (logp.sum(axis=0) - logp) / max(1, len(classes) - 1)
    top = {label: np.argsort(row)[::-1][:k] for label, row in zip(classes, weights)}
    wanted = {int(i) for idx in top.values() for i in idx}
    term_of = {
        offset + i: prefix + term
        for offset, vocabulary, prefix in _vocabularies(pipeline)
        for term, i in vocabulary.items()
        if offset + i in wanted
    }  # not get_feature_names_out(): it sorts every vocabulary
    return {label: [(term_of[int(i)], round(float(row[i]), 4)) for i in top[label]] for label, row in zip(classes, weights)}


def _tfidf_blocks(pipeline: Any) -> list[tuple[str, Any]]:
    """(name, vectorizer) of each TF-IDF block, in feature order (one block: word n-grams only)."""
    features = pipeline.named_steps["tfidf"]
    return list(features.transformer_list) if hasattr(features, "transformer_list") else [("word", features)]


def _vectorizers(pipeline: Any) -> list[Any]:
    return [vectorizer for _, vectorizer in _tfidf_blocks(pipeline)]


def _vocabularies(pipeline: Any) -> list[tuple[int, dict[str, int], str]]:
    """(column offset, vocabulary, display prefix) of each TF-IDF block, in feature order."""
    blocks, offset = [], 0
    for name, vectorizer in _tfidf_blocks(pipeline):
        blocks.append((offset, vectorizer.vocabulary_, "" if name == "word" else f"{name}:"))
        offset += len(vectorizer.vocabulary_)
    return blocks
