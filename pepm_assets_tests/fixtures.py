"""Tiny corpora and a tiny pepm project, written into a temp folder by the tests.

The corpora are generated, not copied, so the tests say exactly what is in them: two MPT-dialect
sittings and one standard-TEI month, with chair, government, collective and non-attached speakers.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shipped_docs(shipped_corpora: Path, corpus_id: str):
    """Every document of a shipped corpus (the `shipped_corpora` fixture's folder), as pepm parses
    it with the repo's corpus config: one Arrow table."""
    import pyarrow as pa

    from pepm_assets.core import corpus
    from pepm_assets.core.config import load_common
    from pepm_assets.core.tei.dialects import build

    cfg = load_common(REPO).corpora[corpus_id]
    dialect = build(corpus_id, shipped_corpora / corpus_id, cfg.dialect, cfg.dialect_options)
    return pa.concat_tables(b.docs for b in corpus.read_batches(dialect, corpus.corpus_files(shipped_corpora / corpus_id, cfg.glob)))


LEFT_WORDS = ["égalité", "droits", "couples", "familles", "progrès", "amour", "reconnaissance", "liberté"]
RIGHT_WORDS = ["filiation", "enfant", "nature", "tradition", "référendum", "père", "mère", "société"]

MPT_SPEAKERS = [  # (auteur, group, wing, vote)
    ("Erwann_Binet", "SRC", "left", "pour"),
    ("Marie_George_Buffet", "GDR", "left", "pour"),
    ("Sergio_Coronado", "ECOLO", "left", "pour"),
    ("Hervé_Mariton", "UMP", "right", "contre"),
    ("Philippe_Gosselin", "UMP", "right", "contre"),
    ("Jean_Christophe_Fromantin", "UDI", "right", "contre"),
    ("Jacques_Bompard", "NI", "right", "contre"),
]


def _text(rng: random.Random, words: list[str], i: int, n: int = 12) -> str:
    return f"Intervention {i} : " + " ".join(rng.choice(words) for _ in range(n)) + "."


def mpt_sitting(file_id: str, n_per_speaker: int, seed: int) -> str:
    rng = random.Random(seed)
    parts = []
    parts.append(
        '<sp who="le_président"><speaker>le président</speaker><mpt:metadata auteur="le_président" interventiontype="régulation"><p>. La séance est ouverte.</p></mpt:metadata></sp>'
    )
    i = 0
    for k in range(n_per_speaker):
        for auteur, group, wing, vote in MPT_SPEAKERS:
            i += 1
            words = LEFT_WORDS if wing == "left" else RIGHT_WORDS
            parts.append(
                f'<sp who="{auteur}"><speaker>{auteur.replace("_", " ")}</speaker>'
                f'<mpt:metadata auteur="{auteur}" interventiontype="intervention" politicalgroup="{group}" vote="{vote}" gender="male" wing="{wing}" debat="mpt" subject="mpt">'
                f"<p>{_text(rng, words, int(file_id[-2:]) * 1000 + i)}</p></mpt:metadata></sp>"
            )
        parts.append(
            '<sp who="Christiane_Taubira"><speaker>Christiane Taubira</speaker><mpt:metadata auteur="Christiane_Taubira" interventiontype="intervention" politicalgroup="GVT" wing="left">'
            f"<p>Le gouvernement répond {file_id} {k}.</p></mpt:metadata></sp>"
        )
        parts.append(
            '<sp who="Plusieurs_députés_du_groupe_UMP"><speaker>Plusieurs députés du groupe UMP</speaker><mpt:metadata auteur="Plusieurs_députés_du_groupe_UMP" interventiontype="interruption">'
            f"<p>Très bien {file_id} {k} !</p></mpt:metadata></sp>"
        )
    parts.append(
        '<sp who="Erwann_Binet"><speaker>Erwann Binet</speaker><mpt:metadata auteur="Erwann_Binet" interventiontype="interruption" politicalgroup="SRC" wing="left"><p>   </p></mpt:metadata></sp>'
    )
    body = "\n".join(parts)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<TEI xmlns="http://www.tei-c.org/ns/1.0" xmlns:mpt="http://mpt.ethelred.fr/ns/0.0/">\n'
        f"<teiHeader><fileDesc><titleStmt><title>Séance {file_id}</title></titleStmt></fileDesc></teiHeader>\n"
        f"<text><body><div><head>Mariage pour tous</head>\n{body}\n</div></body></text></TEI>\n"
    )


AN_PERSONS = [
    ("Boris_Vallaud", "SOC", "left"),
    ("Ugo_Bernalicis", "LFI", "left"),
    ("Eric_Ciotti", "LR", "right"),
    ("Marine_Le_Pen", "NI", "right"),
    ("Laurent_Pietraszewski", "LREM", None),
]


def an_month(n_per_speaker: int, seed: int) -> str:
    rng = random.Random(seed)
    persons = (
        "\n".join(
            f'<person xml:id="{pid}"><persName>{pid.replace("_", " ")}</persName><affiliation role="member" ref="#grp.{grp}"/></person>'
            for pid, grp, _ in AN_PERSONS
        )
        + '\n<person xml:id="Edouard_Philippe"><persName>Édouard Philippe</persName></person>'
    )
    orgs = "\n".join(
        f'<org xml:id="grp.{g}" role="parliamentaryGroup"><orgName>{g}</orgName></org>' for g in sorted({g for _, g, _ in AN_PERSONS})
    )
    us = []
    i = 0
    for _ in range(n_per_speaker):
        for pid, _, wing in AN_PERSONS:
            i += 1
            words = LEFT_WORDS if wing == "left" else RIGHT_WORDS
            us.append(f'<u who="#{pid}" xml:id="u{i}"><seg>{_text(rng, words, 5000 + i)}</seg></u>')
        i += 1
        us.append(f'<u who="#Edouard_Philippe" xml:id="u{i}" ana="#government"><seg>Le Premier ministre répond {i}.</seg></u>')
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<TEI xmlns="http://www.tei-c.org/ns/1.0" xml:lang="fr"><teiHeader>'
        "<fileDesc><titleStmt><title>AN</title></titleStmt></fileDesc><profileDesc><particDesc>"
        f"<listPerson>{persons}</listPerson><listOrg>{orgs}</listOrg></particDesc></profileDesc></teiHeader>\n"
        '<text><body><div type="debateSection" xml:id="d1"><head>Débat 1</head><note type="date"><date when="2019-03-01"/></note>\n'
        + "\n".join(us)
        + "\n</div></body></text></TEI>\n"
    )


CORPORA_YML = """corpora:
  mpt:
    path: data/raw/mpt
    dialect: mpt
  an:
    path: data/raw/an
    dialect: tei
    dialect_options: {element: u, speaker_attribute: who, text_element: seg}
"""

DATASETS_YML = """datasets:
  tiny_mpt:
    corpus_ids: [mpt]
  tiny_an:
    corpus_ids: [an]
  tiny_multi:
    corpus_ids: [mpt, an]
    merge_mode: juxtaposed
    compare_by: [corpus_id]
"""

MODELS_YML = """models:
  check_default: {family: check}
  tfidf_svm_quick:
    family: sklearn
    params: {estimator: linear_svc, ngram_max: 2, min_df: 1}
    early_stop: {min_accuracy: 0.6, min_macro_f1: 0.6}
  tfidf_logreg: {family: sklearn, params: {estimator: logreg, min_df: 1}}
  tfidf_nb: {family: sklearn, params: {estimator: complement_nb, min_df: 1}}
  spacy_bow:
    family: spacy
    params: {config: configs/spacy/spacy_bow.cfg, max_epochs: 2}
  spacy_cnn_quick:
    family: spacy
    params: {config: configs/spacy/spacy_cnn_quick.cfg, max_epochs: 2}
  hf_tiny:
    family: hf
    resource_class: heavy
    params: {vocab_size: 200, hidden_size: 32, num_layers: 1, num_heads: 2, epochs: 4, learning_rate: 0.003, initializer_range: 0.2}
  kmeans_tfidf: {family: cluster, params: {algorithm: kmeans, svd_components: 10, min_df: 1}}
  hdbscan_tfidf: {family: cluster, params: {algorithm: hdbscan, svd_components: 10, min_df: 1, min_cluster_size: 5}}
"""

CROSS_CORPUS_YML = """cross_corpus:
  view: left_right
  model_id: tfidf_svm_quick
  datasets: [tiny_mpt, tiny_an]
"""

HARDWARE_YML = """hardware:
  small:
    threads: 1
    batch_size: 8
    max_length: 32
    max_train_docs_hf: 50
"""

PROFILES = {
    "tiny_quick": """dataset_id: tiny_mpt
view: left_right
families: [check, sklearn, spacy, hf, cluster]
train_prop: 0.75
seed: 7
formats: {spacy_shard_size: 10}
quality: {min_docs_per_class: 5}
""",
    "tiny_an": """dataset_id: tiny_an
view: left_right
families: [sklearn]
models: [tfidf_svm_quick]
quality: {min_docs_per_class: 3}
# one right-wing speaker in the AN month: grouped by speaker, right could not be in both train and job
split: {group_by: null}
""",
    "tiny_multi": """dataset_id: tiny_multi
view: left_right
families: [sklearn, hf]
balance_strategy: oversample
balance_preset: parity
split: {group_by: speaker}
quality: {min_docs_per_class: 3}
""",
}


def make_project(dest: Path, n_per_speaker: int = 6) -> Path:
    """A complete tiny pepm project: configs (label maps copied from the repo) + raw corpora."""
    (dest / "configs" / "common").mkdir(parents=True)
    (dest / "configs" / "profiles").mkdir(parents=True)
    shutil.copytree(REPO / "configs" / "label_maps", dest / "configs" / "label_maps")
    shutil.copytree(REPO / "configs" / "spacy", dest / "configs" / "spacy")
    shutil.copy(REPO / "configs" / "common" / "balance.yml", dest / "configs" / "common" / "balance.yml")
    shutil.copy(REPO / "configs" / "common" / "label_validity.yml", dest / "configs" / "common" / "label_validity.yml")
    for name, text in (("models.yml", MODELS_YML), ("cross_corpus.yml", CROSS_CORPUS_YML), ("hardware.yml", HARDWARE_YML)):
        (dest / "configs" / "common" / name).write_text(text, encoding="utf-8")
    (dest / "configs" / "common" / "corpora.yml").write_text(CORPORA_YML, encoding="utf-8")
    (dest / "configs" / "common" / "datasets.yml").write_text(DATASETS_YML, encoding="utf-8")
    for name, text in PROFILES.items():
        (dest / "configs" / "profiles" / f"{name}.yml").write_text(text, encoding="utf-8")
    mpt = dest / "data" / "raw" / "mpt"
    mpt.mkdir(parents=True)
    for n, file_id in enumerate(("20130101", "20130102")):
        (mpt / f"{file_id}.xml").write_text(mpt_sitting(file_id, n_per_speaker, seed=n), encoding="utf-8")
    (mpt / "metadata.csv").write_text(
        '"id","debat","lieu","seance","date"\n"20130101","x","AN","Première séance","2013-01-29"\n"20130102","x","AN","Deuxième séance","2013-01-30"\n',
        encoding="utf-8",
    )
    an = dest / "data" / "raw" / "an"
    an.mkdir(parents=True)
    (an / "an_2019-03.xml").write_text(an_month(n_per_speaker, seed=3), encoding="utf-8")
    return dest


def build_stamped_view(root: Path, profile: str, overrides: list[str] | tuple[str, ...] = ()):
    """(params, ViewResult): build_view of `profile` as the Dagster asset calls it, stamped with
    the version the lineage expects now (its corpora parsed beforehand)."""
    from pepm_assets.core import lineage
    from pepm_assets.core.config import resolve_profile
    from pepm_assets.core.paths import ProjectPaths
    from pepm_assets.core.prepare import build_view

    params = resolve_profile(root, profile, list(overrides))
    version, inputs = lineage.Expected(root).view(params)
    stamp = lineage.stamp(version, inputs, ["train.tsv", "job.tsv"])
    docs = {cid: ProjectPaths(root).corpus_dir(cid) / "docs.parquet" for cid in params.dataset.corpus_ids}
    return params, build_view(params, root, docs, stamp)
