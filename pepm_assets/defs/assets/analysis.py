"""Standard analyses of a prepared dataset x view, as assets materialised on demand (from the UI, or
`pepm report ...` outside Dagster): in no job, so a pipeline run never pays for them.

polarization_over_time[dataset|view]: core/polarization.py with its defaults (per year, the
profile's first scikit-learn model, 10 speaker-grouped splits per period).
label_validity[dataset|view]: core/label_validity.py (the view's label-validity diagnostics, the
profile's first scikit-learn model with names kept and masked).
"""

from typing import Any

import dagster as dg

from ...core import polarization
from ..resources import PepmProject
from .prepare import markdown_counts, run_params

GROUP = "analysis"


def build_analysis_assets(views_pd: dg.PartitionsDefinition) -> list[Any]:
    @dg.asset(
        partitions_def=views_pd,
        group_name=GROUP,
        deps=["view_split"],
        description="Held-out accuracy per year on speaker-grouped splits, with 95% intervals and the chance level (Peterson & Spirling 2018): "
        "`reports/<dataset>/<view>/polarization_over_time.{json,md,png}`. `pepm report polarization` does the same from the CLI (--by legislature, --model).",
    )
    def polarization_over_time(context: dg.AssetExecutionContext, project: PepmProject) -> dg.MaterializeResult:
        params = run_params(context, project)
        try:
            result = polarization.write_report(params, project.path, polarization.Settings())
        except polarization.PolarizationError as exc:
            raise dg.Failure(str(exc)) from None
        rows = {
            str(r["period"]): f"{r['accuracy']:.3f} [{r['accuracy_ci95'][0]:.3f}, {r['accuracy_ci95'][1]:.3f}] vs chance {r['chance']:.3f}"
            if r["status"] == "ok"
            else f"skipped: {r['reason']}"
            for r in result["periods"]
        }
        return dg.MaterializeResult(
            metadata={
                "model_id": result["model_id"],
                "periods_measured": result["n_periods_measured"],
                "accuracy_by_year": markdown_counts(rows, "year", "accuracy [95% CI]"),
                "plot": dg.MetadataValue.path(result["files"]["png"]),
                "markdown": dg.MetadataValue.path(result["files"]["md"]),
                "split_version": result["split_version"] or "",
            }
        )

    @dg.asset(
        partitions_def=views_pd,
        group_name=GROUP,
        deps=["view_split"],
        description="Label validity: the label's association with other metadata (vote, government/opposition, corpus), names of parties "
        "and groups in the texts, procedural top terms, and the profile's first scikit-learn model scored with names kept and masked "
        "(filters.mask_names, fitted in process on the prepared split): `reports/<dataset>/<view>/label_validity.{json,md,png}`. "
        "`pepm report label-validity` does the same from the CLI.",
    )
    def label_validity(context: dg.AssetExecutionContext, project: PepmProject) -> dg.MaterializeResult:
        from ...core import diagnostics
        from ...core import label_validity as report

        params = run_params(context, project)
        try:
            result = report.write_report(params, project.path, report.Settings())
        except report.LabelValidityError as exc:
            raise dg.Failure(str(exc)) from None
        rows = {
            subset: " vs ".join(report._cell(result["scores"][v][subset], "accuracy") for v in (report.KEPT, report.MASKED))
            for subset in ("all", "job texts naming a group", "other job texts")
        }
        warnings = diagnostics.warning_lines(result["diagnostics"])
        return dg.MaterializeResult(
            metadata={
                "model_id": result["model_id"],
                "label_validity_warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in warnings) or "no warning"),
                "accuracy_names_kept_vs_masked": markdown_counts(rows, "job texts", "accuracy, names kept vs masked [95% CI]"),
                "delta_macro_f1_kept_minus_masked": result["delta_macro_f1_kept_minus_masked"]["delta_macro_f1"],
                "plot": dg.MetadataValue.path(result["files"]["png"]),
                "markdown": dg.MetadataValue.path(result["files"]["md"]),
                "split_version": result["split_version"],
            }
        )

    return [polarization_over_time, label_validity]
