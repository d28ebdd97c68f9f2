"""Clustering family: TF-IDF -> truncated SVD (LSA) -> KMeans or HDBSCAN, scored against the labels.

Unsupervised: `predict` returns cluster ids, and evaluation reports ARI, NMI, homogeneity,
completeness and silhouette instead of accuracy. KMeans is fitted on train and assigns job
documents to the nearest centroid. scikit-learn's HDBSCAN has no `predict`, so it is fitted on the
job embeddings themselves (transductive: the projection is still learnt on train only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from . import Family, FamilyParams, TrainData, load_estimator, save_estimator

MODEL_FILE = "cluster.pkl"


class ClusterParams(FamilyParams):
    algorithm: Literal["kmeans", "hdbscan"] = "kmeans"
    n_clusters: int | None = Field(None, ge=2, description="None: as many clusters as labels")
    svd_components: int = Field(100, ge=2)
    min_cluster_size: int = Field(25, ge=2)
    max_features: int = Field(50000, ge=10)
    min_df: int = Field(2, ge=1)


class ClusterFamily(Family):
    reads = "tsv"
    train_columns = ("text", "label")
    hardware_fields = ()
    params_model = ClusterParams
    supervised = False

    def fit(self, data: TrainData, model_dir: Path) -> dict[str, Any]:
        from sklearn.cluster import KMeans
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import Normalizer
        from threadpoolctl import threadpool_limits

        from .counting import fast_counting

        p: ClusterParams = self.params  # type: ignore[assignment]
        texts = data.train["text"].tolist()
        tfidf = TfidfVectorizer(sublinear_tf=True, min_df=p.min_df, max_features=p.max_features)
        with threadpool_limits(data.hardware.threads), fast_counting([tfidf], data.hardware.threads):
            x = tfidf.fit_transform(texts)
            n_comp = max(2, min(p.svd_components, x.shape[1] - 1, x.shape[0] - 1))
            lsa = make_pipeline(TruncatedSVD(n_components=n_comp, random_state=data.seed), Normalizer(copy=False))
            emb = lsa.fit_transform(x)
            info: dict[str, Any] = {"algorithm": p.algorithm, "svd_components": n_comp, "n_features": x.shape[1], "class_weight": "none"}
            model = None
            if p.algorithm == "kmeans":
                k = p.n_clusters or len(data.labels)
                model = KMeans(n_clusters=k, random_state=data.seed, n_init=10).fit(emb)
                info.update(n_clusters=k, inertia=round(float(model.inertia_), 3))
        save_estimator({"tfidf": tfidf, "lsa": lsa, "kmeans": model, "params": p.model_dump()}, model_dir / MODEL_FILE)
        return info

    def embed(self, model_dir: Path, texts: list[str]):
        return _embed(load_estimator(model_dir / MODEL_FILE), texts)

    def predict(self, model_dir: Path, texts: list[str]) -> list[str]:
        from sklearn.cluster import HDBSCAN

        bundle = load_estimator(model_dir / MODEL_FILE)
        emb = _embed(bundle, texts)
        if bundle["kmeans"] is not None:
            ids = bundle["kmeans"].predict(emb)
        else:
            ids = HDBSCAN(min_cluster_size=bundle["params"]["min_cluster_size"], copy=True).fit_predict(emb)
        return [f"c{i}" if i >= 0 else "noise" for i in ids]


def _embed(bundle: dict[str, Any], texts: list[str]):
    from .counting import fast_counting

    with fast_counting([bundle["tfidf"]], n_jobs=1):
        return bundle["lsa"].transform(bundle["tfidf"].transform(texts))
