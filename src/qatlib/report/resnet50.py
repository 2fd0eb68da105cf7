"""The ResNet50 chapter's report: everything its page shows, from its committed artefacts and this
build's run.

The page shows the claims over seeds from the committed seeded artefact
(``results/resnet50/default_seeds``), as the introduction does (one set of numbers per site); the
build's own run is a reproduction check of its first seed
(:func:`qatlib.report.seeds.reproduction`), fills the Setup section and draws the figure that needs
a run. :func:`chapter` returns all of it as a :class:`qatlib.report.seeds.Page`; the chapter itself
is prose with short calls.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qatlib.experiments.records import E_BAR, PairRecord, RunRecord
from qatlib.report import artefacts, claims, markup, seeds
from qatlib.report import tables as tables_lib

__all__ = [
    "ARTEFACT", "CONTROL", "LARGER", "chapter", "control_run", "error_curves", "invariants", "largest_run",
    "run_summary", "setup_values", "state_map", "state_map_frame", "verdicts",
]

#: The committed seeded artefact the chapter shows.
ARTEFACT = "default_seeds"
#: The committed run with the unmapped-state control, shown where the build's preset has none.
CONTROL = "state_map_control"
#: Committed runs larger than a book build, the first present shown in the last section.
LARGER = ("paper", "mnist_10_epochs")
_PAPER_MODEL = "imagenet_resnet50"
_NAMES = {"sgd": "SGD", "adam": "Adam"}
_DATA_SOURCES = {"idx": "Full MNIST from the shipped, MD5-verified IDX files", "tfds": "MNIST from tensorflow-datasets"}
_STATE_CAPTION = (
    "The state map: $\\bar E$ between $\\hat Q$-net and the baseline STE-net with the optimizer state mapped "
    "(as derived above) and copied unmapped, shortly after the branch and at the end of training."
)
_HELPED = "the map removes most of the error STE-net makes just after the branch, as the first-order argument predicts"
_NOT_HELPED = "here the map does not remove most of the error just after the branch"
_NO_CONTROL = {
    "resnet_control_source": "no control run is stored in this checkout",
    "resnet_control_after": "Just",
    "resnet_control_factor": "not measured here, and so neither is",
    "resnet_control_verdict": "the state_map_control preset measures both",
}
_PAPER_TABLE5_CAPTION = (
    "The paper's ResNet50 accuracy and loss on ImageNet (the right half of paper Table 5), as printed, its "
    "Diff rows included; the validation losses are cut off in the paper's text."
)
_PROVENANCE_CAPTION = "Provenance of this page's run (preset `{preset}`): data, model, schedule, device, wall time and versions."
_NOT_RUN = (
    "No run larger than this page's `{preset}` run is committed. Two are ready to run, each with one "
    "command on a machine that has what it needs:\n\n"
    "- 10 epochs of full MNIST with the full ResNet50, the first shared (about 14 minutes on one H200 GPU): "
    "`python -m qatlib run resnet50 --preset mnist_10_epochs --no-notebook`;\n"
    "- the paper's ImageNet run (`imagenet2012` prepared for tensorflow-datasets, accelerators): "
    "`python -m qatlib run resnet50 --preset paper`.\n\n"
    "Each writes `results/resnet50/<preset>/metrics.json`, which this section then shows beside the paper's numbers."
)


def _min_over(records: list[RunRecord], metric: Callable[[PairRecord], float | None], experiments: tuple[str, ...]) -> float | None:
    values = [v for r in records for e in experiments if (v := metric(r.pair(e))) is not None]
    return min(values) if values else None


def verdicts(run_json: dict[str, Any], paper: dict[str, Any]) -> seeds.Page:
    """Phrases and tables of the claims over the committed seeds, and this build's check."""
    records = seeds.stored(ARTEFACT, chapter="resnet50")
    run_records = artefacts.run_records(run_json)
    values: dict[str, str] = {"resnet_check": seeds.reproduction(run_records, records), "resnet_artefact": ARTEFACT}
    printed = claims.claims(seeds.paper_metrics(paper, _PAPER_MODEL))
    mnist_printed = claims.claims(seeds.paper_metrics(paper, "mnist"))
    values.update(
        resnet_paper_a_sgd=f"{printed['sgd']['A_ratio']:.2f}", resnet_paper_a_adam=f"{printed['adam']['A_ratio']:.2f}",
        resnet_paper_b=f"{printed['sgd']['B_ratio']:.2f}", resnet_paper_b_mnist=f"{mnist_printed['sgd']['B_ratio']:.1f}",
        resnet_claim_factor=f"{claims.CLAIM_FACTOR:g}", resnet_accuracy_tolerance=f"{100 * claims.ACCURACY_TOLERANCE:g}",
    )
    tables: dict[str, Any] = {}
    names = ("tab-resnet-glance", "tab-resnet-error", "tab-resnet-accuracy")
    if not records:
        for key in ("resnet_seeds", "resnet_a_sgd", "resnet_a_adam", "resnet_b_sgd", "resnet_accuracy_sgd", "resnet_accuracy_adam",
                    "resnet_q_acc_sgd", "resnet_q_acc_adam", "resnet_weights_low", "resnet_same_baseline", "resnet_same_lr_tweak"):
            values[key] = seeds.MISSING
        for name in names:
            tables[name] = seeds.missing_table(name)
        return seeds.Page(values, tables, {})
    values["resnet_seeds"] = str(len({r.seed for r in records}))
    for decision in claims.decide_all(records):
        values[f"resnet_{decision.claim.lower()}_{decision.optimizer}"] = seeds.claim_phrase(decision)
    for optimizer in ("sgd", "adam"):
        chosen = claims.select(records, optimizer)
        accuracies = [v for r in chosen if (v := r.net("q_net").val_acc) is not None]
        values[f"resnet_q_acc_{optimizer}"] = seeds.percent_text(claims.difference_interval(accuracies), 3, at_most=1.0) if accuracies else seeds.MISSING
    for key, what, experiments in (
        ("resnet_weights_low", lambda p: p.agreement, ("baseline", "lr_tweak", "unadjusted")),
        ("resnet_same_baseline", lambda p: p.prediction_agreement, ("baseline",)),
        ("resnet_same_lr_tweak", lambda p: p.prediction_agreement, ("lr_tweak",)),
    ):
        lowest = _min_over(records, what, experiments)
        values[key] = markup.percent(lowest) if lowest is not None else seeds.MISSING
    steps = records[0].steps
    tables["tab-resnet-glance"] = markup.table(
        seeds.glance_frame(records, paper, _PAPER_MODEL),
        f"The claims on the ResNet50 stand-in ({ARTEFACT}: {steps} steps on MNIST at 32×32, {values['resnet_seeds']} seeds) "
        "beside the paper's ImageNet ratios: ours as the geometric mean over seeds with its 95% interval, and the verdict.",
        "tab-resnet-glance",
    )
    tables["tab-resnet-error"] = markup.table(
        seeds.error_frame(records, paper, _PAPER_MODEL),
        "Paper Table 4 (ResNet50 half) over seeds: Ē at the end of training (percent of the range) and the quantized "
        "weight agreement, the paper's on ImageNet after 100 epochs and ours on the stand-in.",
        "tab-resnet-error",
    )
    tables["tab-resnet-accuracy"] = markup.table(
        seeds.accuracy_frame(records),
        "Paper Table 5 (ResNet50 half) over seeds on the stand-in: test and training accuracy (± the half-width of the "
        "95% interval) and test loss of STE-net and Q̂-net, and Q̂-net − STE-net in test accuracy.",
        "tab-resnet-accuracy",
    )
    return seeds.Page(values, tables, {})


# ------------------------------------------------------------------------------ this build's run
def run_summary(run_json: dict[str, Any], config: Any, metrics_file: Path) -> str:
    """Two lines on this build's run: what trained, for how long, and where its metrics went."""
    source = run_json["provenance"]
    return (f"{run_json['model']['name']}: {config.total_steps} steps of batch {config.batch_size}, "
            f"{run_json['train_seconds']:.0f} s training and evaluation, {source['seconds']:.0f} s in all\n"
            f"wrote {metrics_file.relative_to(artefacts.results_root().parent)}")


def invariants(run_json: dict[str, Any], optimizers: tuple[str, ...]) -> dict[str, Any]:
    """What every preset's run must show: the paper's branches per optimizer, ``E = 0`` at the branch
    point (``E_zero_at_branch``), and the keys the MNIST chapter's artefacts have."""
    return {
        "branches": {opt: sorted(k for k in run_json[opt]) for opt in optimizers},
        "E_zero_at_branch": all(
            run_json["E_t"][opt][branch][E_BAR][0] < 1e-6 for opt in optimizers for branch in run_json[opt]
        ),
        "keys": sorted(k for k in ("accuracy", "provenance", "E_t") if k in run_json),
    }


def _count(value: int, unit: str = "") -> str:
    """``23.5 million`` above a million, else ``12,345`` (``unit`` after either)."""
    text = f"{value / 1e6:.1f} million" if value > 1e6 else f"{value:,}"
    return f"{text} {unit}" if unit else text


def setup_values(run_json: dict[str, Any], config: Any, preset: str) -> dict[str, Any]:
    """The Setup section's glued values (``resnet_model`` ... ``resnet_wall``), from this build's run
    and ``config``; ``resnet_bits``, ``resnet_batch`` and ``resnet_log_every`` stay numbers."""
    model, data, source = run_json["model"], run_json["data"], run_json["provenance"]
    device = source["device"]
    alphas = sorted({round(a, 4) for a in run_json["alpha"].values()})
    reduced = f"A reduced {model['name']} (the {preset} preset; the default preset trains the full ResNet50)"
    where = markup.device(device["backend"], device["devices"], source["data_parallel_devices"])
    return {
        "resnet_preset": preset,
        "resnet_model": model["name"] if model["name"] == "ResNet50" else reduced,
        "resnet_parameters": _count(model["parameters"]),
        "resnet_quantized": _count(model["quantized_weights"], "weights"),
        "resnet_bits": config.bits,
        "resnet_alpha": ", ".join(f"{a:.4f}" for a in alphas),
        "resnet_data_source": _DATA_SOURCES.get(data["source"], data["source"]),
        "resnet_train_images": markup.integer(data["train"]),
        "resnet_val_images": markup.integer(data["val"]),
        "resnet_image_size": f"{data['image_size']}×{data['image_size']}",
        "resnet_sgd_lr": f"{config.sgd_lr:g}",
        "resnet_adam_lr": f"{config.adam_lr:g}",
        "resnet_steps": markup.integer(config.total_steps),
        "resnet_batch": config.batch_size,
        "resnet_shared": markup.integer(run_json["E_t"]["shared_steps"]),
        "resnet_devices": f"{where} of a {device['cpu_count']}-core {device['cpu']} machine",
        "resnet_eval_examples": markup.integer(config.eval_examples),
        "resnet_wall": artefacts.duration(source["seconds"]),
        "resnet_log_every": config.log_every,
    }


def error_curves(run_json: dict[str, Any], config: Any) -> Any:
    """The figure of Ē between Q̂-net and each branch along this build's run, a dotted line at the
    branch point, the x-axis over the whole run."""
    from qatlib.report.figures import training as training_plots

    history = {"steps": run_json["E_t"]["steps"], **{k: run_json["E_t"][k] for k in config.optimizers}}
    figure = training_plots.error_curves(history)
    for ax in figure.axes:
        ax.axvline(run_json["E_t"]["shared_steps"], color="0.5", lw=1.0, ls=":")
        ax.set_xlim(0, config.total_steps)
    return figure


# ------------------------------------------------------------------------------- the state map
def control_run(run_json: dict[str, Any], config: Any) -> dict[str, Any] | None:
    """The run with the unmapped-state control: this build's if its preset has it, else the committed
    ``state_map_control`` artefact, else None."""
    if config.controls:
        return run_json
    path = artefacts.metrics_path("resnet50", CONTROL)
    return artefacts.read_json(path) if path.is_file() else None


def state_map_frame(control: dict[str, Any]) -> tuple[Any, list[str], int, bool]:
    """The state-map table's frame from a control run, with the per-optimizer factor phrases
    (unmapped Ē over mapped Ē at the first logged step after the branch), how many steps after the
    branch that is, and whether the unmapped Ē is over twice the mapped one for every optimizer."""
    import pandas as pd

    steps = control["E_t"]["steps"]
    after = steps[1] - steps[0]
    rows, factors, helped = [], [], True
    for optimizer in ("sgd", "adam"):
        curves = control["E_t"].get(optimizer, {})
        if "baseline_raw_state" not in curves:
            continue
        mapped, raw = curves["baseline"][E_BAR], curves["baseline_raw_state"][E_BAR]
        rows.append([_NAMES[optimizer], *(tables_lib.significant_percent(v) for v in (mapped[1], raw[1], mapped[-1], raw[-1]))])
        factors.append(f"{markup.number(raw[1] / mapped[1])} times ({_NAMES[optimizer]})")
        helped = helped and raw[1] > 2 * mapped[1]
    columns = ["optimizer", f"mapped, step +{after}", f"unmapped, step +{after}", "mapped, end", "unmapped, end"]
    return pd.DataFrame(rows, columns=columns).set_index("optimizer"), factors, after, helped


def state_map(run_json: dict[str, Any], config: Any) -> tuple[dict[str, str], Any]:
    """The state-map section's glued phrases (``resnet_control_*``) and its table
    ``tab-resnet-state-map``; a note and the 'not measured' phrases where no control run exists."""
    control = control_run(run_json, config)
    if control is None:
        table = markup.table(tables_lib.note_frame("No control run is stored in this checkout."), _STATE_CAPTION, "tab-resnet-state-map")
        return dict(_NO_CONTROL), table
    frame, factors, after, helped = state_map_frame(control)
    values = {
        "resnet_control_source": f"{control['model']['name']}, {markup.plural(control['provenance']['steps'], 'step')}, "
                                 "the same batches as the default preset",
        "resnet_control_after": markup.plural(after, "step").capitalize(),
        "resnet_control_factor": markup.listing(factors),
        "resnet_control_verdict": _HELPED if helped else _NOT_HELPED,
    }
    return values, markup.table(frame, _STATE_CAPTION, "tab-resnet-state-map")


# ------------------------------------------------------------------------- the largest stored run
def largest_run(preset: str, paper: dict[str, Any]) -> list[Any]:
    """What the last section displays: for the first committed artefact of :data:`LARGER` other than
    ``preset``, a paragraph on its accuracy claim and its four tables beside the paper's; else a
    note on how to make one."""
    from IPython.display import Markdown

    found = [name for name in LARGER if name != preset and artefacts.metrics_path("resnet50", name).is_file()]
    if not found:
        return [markup.admonition("Not run for this book", _NOT_RUN.format(preset=preset))]
    stored = artefacts.read_json(artefacts.metrics_path("resnet50", found[0]))
    what = f"the `{found[0]}` preset's artefact ({stored['model']['name']}, {markup.plural(stored['provenance']['steps'], 'step')})"
    verdicts = claims.claims(stored)
    within = "within" if all(v["accuracy"] for v in verdicts.values()) else "not all within"
    differences = markup.listing([f"{100 * v['val_acc_difference']:+.2f} points with {_NAMES[o]}" for o, v in verdicts.items()])
    paragraph = Markdown(
        f"The largest is {what}, {artefacts.duration(stored['provenance']['seconds'])} of training and evaluation. Its validation "
        f"accuracy differences ($\\hat Q$-net − STE-net) are {differences}, {within} the "
        f"{100 * claims.ACCURACY_TOLERANCE:g} points we accept on MNIST."
    )
    paper4 = paper["table4"][_PAPER_MODEL]
    return [paragraph, *(markup.table(frame, caption.format(what=what), name) for name, frame, caption in (
        ("tab-resnet-stored-error", tables_lib.table4_error_frame(stored, paper4),
         "Alignment error $\\bar E$ of {what} beside the paper's ImageNet values."),
        ("tab-resnet-stored-agreement", tables_lib.table4_agreement_frame(stored, paper4),
         "Quantized weight agreement of {what} beside the paper's, and the share of validation images with the same prediction."),
        ("tab-resnet-stored-accuracy", tables_lib.table5_frame(stored["accuracy"]), "Accuracy and loss of STE-net and $\\hat Q$-net in {what}."),
        ("tab-resnet-stored-provenance", tables_lib.provenance_frame(stored), "Provenance of {what}."),
    ))]


# ------------------------------------------------------------------------------------ the chapter
def chapter(run_json: dict[str, Any], config: Any, preset: str) -> seeds.Page:
    """Everything the chapter shows from this build's run of ``config`` (preset ``preset``) and the
    committed artefacts: the verdicts' phrases and tables (:func:`verdicts`), the Setup values, the
    state map, the paper's Table 5, the provenance table, the largest stored run (the table
    ``stored-run``: a list to display) and the figure ``fig_resnet_error_curves``."""
    from qatlib.report.paper import paper_tables

    paper = paper_tables()
    page = verdicts(run_json, paper)
    page.values.update(setup_values(run_json, config, preset))
    control_values, page.tables["tab-resnet-state-map"] = state_map(run_json, config)
    page.values.update(control_values)
    page.tables["tab-resnet-accuracy-paper"] = markup.table(
        tables_lib.paper_table5_frame(paper["table5"][_PAPER_MODEL]), _PAPER_TABLE5_CAPTION, "tab-resnet-accuracy-paper")
    page.tables["tab-resnet-provenance"] = markup.table(
        tables_lib.provenance_frame(run_json), _PROVENANCE_CAPTION.format(preset=preset), "tab-resnet-provenance")
    page.tables["stored-run"] = largest_run(preset, paper)
    page.figures["fig_resnet_error_curves"] = error_curves(run_json, config)
    return page
