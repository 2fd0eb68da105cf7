"""Tests for qatlib.report.claims (verdicts over seeds), qatlib.report.seeds and qatlib.report.intro
(the tables and phrases the MNIST chapter and the introduction glue)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from qatlib.experiments.records import NetRecord, RunRecord
from qatlib.report import artefacts, claims, intro
from qatlib.report import seeds as report
from qatlib.report.paper import paper_tables


def record(seed, base, tweak=0.01, unadjusted=0.05, q_acc=0.97, ste_acc=0.97, optimizer="sgd", steps=1000, **pairs):
    """A record as the seeded presets write it (only what the claims read), read back from its JSON."""
    entries = {"baseline": {"E_bar": base}, "lr_tweak": {"E_bar": tweak}}
    if optimizer == "sgd" and unadjusted is not None:
        entries["unadjusted"] = {"E_bar": unadjusted}
    entries.update({name: {"E_bar": value} for name, value in pairs.items()})
    nets = {"q_net": {"val_acc": q_acc, "trained": True}, "ste_net": {"val_acc": ste_acc, "trained": True}}
    return RunRecord.from_json({"seed": seed, "spec": {"optimizer": optimizer, "steps": steps}, "pairs": entries, "nets": nets})


def test_ratio_interval_is_a_t_interval_on_the_log_ratios():
    values = [2.0, 2.5, 3.1, 2.2, 2.8]
    interval = claims.ratio_interval(values)
    logs = np.log(values)
    half = stats.t.ppf(0.975, 4) * logs.std(ddof=1) / math.sqrt(5)
    assert interval.mean == pytest.approx(math.exp(logs.mean()))
    assert (interval.low, interval.high) == pytest.approx((math.exp(logs.mean() - half), math.exp(logs.mean() + half)))
    assert interval.n == 5 and interval.contains(interval.mean)
    one = claims.ratio_interval([2.0])
    assert one.n == 1 and math.isnan(one.low) and not one.contains(2.0)


@pytest.mark.parametrize(
    ("bases", "verdict"),
    [
        ((0.010, 0.011, 0.012), "holds"),  # A = 1.0-1.2, all below 2
        ((0.030, 0.031, 0.032), "fails"),  # A = 3.0-3.2, all above 2
        ((0.005, 0.020, 0.060), "undecided"),  # straddles 2
    ],
)
def test_claim_a_verdict_follows_the_interval(bases, verdict):
    records = [record(seed, base) for seed, base in enumerate(bases)]
    decision = claims.decide(records, "sgd", "A")
    assert decision.verdict == verdict
    ratios = [base / 0.01 for base in bases]
    assert decision.value.values == pytest.approx(ratios)


def test_claim_b_and_accuracy_verdicts():
    records = [record(seed, 0.01, unadjusted=u, q_acc=0.970 + d, ste_acc=0.970) for seed, (u, d) in enumerate(((0.05, 0.001), (0.06, -0.001), (0.055, 0.0)))]
    assert claims.decide(records, "sgd", "B").verdict == "holds"
    assert claims.decide(records, "sgd", "accuracy").verdict == "holds"
    worse = [record(seed, 0.01, q_acc=0.90 + 0.001 * seed, ste_acc=0.97) for seed in range(3)]
    assert claims.decide(worse, "sgd", "accuracy").verdict == "fails"
    assert claims.decide([record(0, 0.01, optimizer="adam")], "adam", "B").verdict == "not measured"


def test_one_seed_is_undecided_and_an_untrained_net_gives_no_verdict():
    assert claims.decide([record(0, 0.01)], "sgd", "A").verdict == "undecided"
    records = [record(seed, 0.01) for seed in range(3)]
    records[2].nets["ste_net"] = NetRecord(val_acc=0.103, finite=True)  # at chance: did not train
    decision = claims.decide(records, "sgd", "A")
    assert decision.verdict == "not trained" and decision.untrained_seeds == (2,)
    assert report.claim_phrase(decision) == "has no verdict: a net did not train (seed 2)"


def test_equivalent_lr_change_inverts_the_fitted_power_law():
    # Ē(x) = 0.05 x^0.5 exactly: the baseline's Ē = 0.005 is a 1% change, 0.0158 a 10% one
    tweaks = {name: 0.05 * x**0.5 for name, x in claims.YARDSTICK_TWEAKS.items()}
    for target, expected in ((0.005, 0.01), (0.05 * 0.1**0.5, 0.1), (0.05 * 0.5**0.5, 0.5)):
        rec = record(0, target, **{k: v for k, v in tweaks.items() if k != "lr_tweak"}, tweak=tweaks["lr_tweak"])
        assert claims.equivalent_lr_change(rec) == pytest.approx(expected)
    assert claims.equivalent_lr_change(record(0, 0.01, tweak=0.01)) is None


def test_run_records_reads_both_artefact_shapes():
    records = [record(0, 0.01), record(1, 0.02)]
    seeded = {"runs": [r.to_json() for r in records]}
    assert artefacts.run_records(seeded) == records
    single = {
        "sgd": {"baseline": {"E_bar": 0.01}, "lr_tweak": {"E_bar": 0.02}},
        "accuracy": {"sgd": {"q_net": {"val_acc": 0.9}, "ste_net": {"val_acc": 0.9}}},
        "provenance": {"steps": 400, "config": {"init_seed": 3}},
    }
    (one,) = artefacts.run_records(single)
    assert one.seed == 3 and one.spec == {"optimizer": "sgd", "steps": 400}
    assert claims.decide([one], "sgd", "A").value.mean == pytest.approx(0.5)


def test_glance_frame_states_paper_ours_lr_change_and_verdict():
    tweaks = {"lr_tweak_0.1pct": 0.003, "lr_tweak_10pct": 0.03}
    records = [record(s, b, **tweaks) for s, b in enumerate((0.030, 0.031, 0.032))]
    records += [record(s, b, optimizer="adam", **tweaks) for s, b in enumerate((0.010, 0.011, 0.009))]
    frame = report.glance_frame(records, paper_tables())
    sgd = frame.iloc[0]
    assert sgd["paper"] == "0.90" and sgd["verdict"] == "fails"
    assert sgd["ours (mean [95% interval])"].startswith("3.10 [")
    assert sgd["equivalent lr change"].startswith("10")  # Ē = 0.003 x^0.5 ... 0.03 reached at x = 10%
    assert frame.iloc[1]["verdict"] == "holds"
    assert list(frame.index)[2].startswith("B,")


def test_yardstick_frame_names_sgd_by_its_momentum():
    tweaks = {"lr_tweak_0.1pct": 0.003, "lr_tweak_10pct": 0.03, "rounding": 0.0001}
    with_momentum = [record(s, b, **tweaks) for s, b in enumerate((0.030, 0.031, 0.032))]
    for r in with_momentum:
        r.spec["sgd_momentum"] = 0.9
    plain = [dataclasses.replace(r, spec={**r.spec, "sgd_momentum": 0.0}) for r in with_momentum]
    assert list(report.yardstick_frame(with_momentum).index) == ["SGD + momentum"]
    frame = report.yardstick_frame(plain)
    assert list(frame.index) == ["SGD"]
    assert frame.iloc[0]["Ē rounding twin"].startswith("0.010%")  # 1e-4 of the range, in percent


def test_reproduction_says_equal_or_how_far():
    committed = [record(seed, 0.01 + 0.001 * seed) for seed in range(3)]
    assert "bit for bit" in report.reproduction([record(0, 0.01)], committed)
    moved = report.reproduction([record(0, 0.0125)], committed)
    assert "differs from the committed one by up to 25%" in moved
    assert report.reproduction([record(5, 0.01)], committed).startswith("the committed artefact has no run of seed 5")
    assert report.reproduction([record(0, 0.01)], None) == "no committed artefact to compare with"


def test_percent_number_and_texts():
    assert report.percent_number(0.00515) == "0.52"
    assert report.percent_number(6.5e-10) == "6.5 × 10⁻⁸"
    interval = claims.difference_interval([0.99, 1.0, 1.0])
    assert report.percent_text(interval, 4, at_most=1.0).endswith(", 100]")  # clipped: not 101.1
    assert report.pp_text(claims.difference_interval([-0.001, -0.002, -0.0015])).startswith("−0.15 pp [")


def test_intro_headlines_follow_the_verdict():
    fails = claims.Decision("sgd", "A", claims.ratio_interval([3.0, 3.1, 3.2]), "fails")
    assert intro.headline(fails) == intro.HEADLINES["sgd", "A"]["fails"]
    undecided = claims.Decision("sgd", "B", claims.ratio_interval([1.5, 3.0, 2.0]), "undecided")
    assert "do not decide" in intro.headline(undecided)
    assert intro.headline(claims.Decision("adam", "A", None, "not trained", (1,))).startswith("Some nets did not train")


def test_intro_page_reads_the_committed_artefacts(tmp_path, monkeypatch):
    from qatlib import files

    monkeypatch.setenv("QATLIB_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("QATLIB_PRESET", "quick")
    tweaks = {"lr_tweak_0.1pct": 0.003, "lr_tweak_10pct": 0.03}
    runs = [record(s, b, **tweaks) for s, b in enumerate((0.030, 0.031, 0.032))]
    runs += [record(s, b, optimizer="adam", **tweaks) for s, b in enumerate((0.010, 0.011, 0.009))]
    files.write_json(tmp_path / "mnist" / "paper_seeds" / "metrics.json", {"runs": [r.to_json() for r in runs]})
    page = intro.page()
    assert page.values["head_a_sgd"] == intro.HEADLINES["sgd", "A"]["fails"]
    assert page.values["head_a_adam"] == intro.HEADLINES["adam", "A"]["holds"]
    assert page.values["claim_a_sgd"].startswith("fails (3.10 [")
    assert page.values["headline_seeds"] == "3" and page.values["nomom_a_sgd"] == report.MISSING_CLAIM
    assert page.values["thm_head"] == "The theorems hold where they are stated, with one correction"
    assert set(page.tables) == {"tab-glance", "tab-setups"}


def test_length_trend_and_paper_finding_read_the_intervals():
    from qatlib.report import mnist

    def setup(ratios_by_steps, spread=0.02):
        return [record(seed, ratio * 0.01 * (1 + spread * (seed - 1)), steps=steps)
                for steps, ratio in ratios_by_steps.items() for seed in range(3)]

    falling, rising = setup({100: 5.0, 1000: 3.0}), setup({100: 0.5, 1000: 3.1})
    trend = mnist.length_trend({"lengths": falling, "authors": rising})
    assert trend["lengths"] == "falls from 5.00 at 100 steps to 3.00 at 1,000"
    assert trend["authors"] == "rises from 0.50 at 100 steps to 3.10 at 1,000"
    assert (trend["longest"], trend["overlap"]) == ("1,000", "overlap")
    assert mnist.length_trend({"lengths": falling, "authors": setup({100: 0.5, 1000: 30.0})})["overlap"] == "do not overlap"
    assert mnist.length_trend({"one length": setup({300: 2.0})}) == {"overlap": mnist.MISSING, "longest": mnist.MISSING}
    finding = mnist.paper_finding({"lengths": falling, "authors": setup({100: 0.9, 300: 0.91, 1000: 3.1})}, 0.90)
    assert finding["contains"] == "2 of 5 settings (authors' setup at 100 and 300 steps)"
    assert finding["holds"] == "2 of 5 (authors' setup at 100 and 300 steps)"
    with_article = mnist.paper_finding({"authors": setup({100: 0.9, 1000: 3.1})}, 0.90, article="the ")
    assert with_article["contains"] == "1 of 2 settings (the authors' setup at 100 steps)"
