"""The report's plots (eval/report.py): each checkpoint minus the warm-up with its interval
(vs_warmup.png) and the training curves from checkpoints/$(RUN)/*/metrics.jsonl
(training_curves.png); what report.md says when either cannot be drawn; make's wiring.

The checkpoints' verdicts and summaries are test_eval.py's fixture runs; no model is needed.
"""
import json

import pytest

from conftest import copy_checkout, make
from eval import compare, report
from itool.records import RecordError
from test_eval import run_main, write_fixture_run

PNG = b"\x89PNG\r\n\x1a\n"
WARMUP = [{"step": 5, "phase": "easy", "loss": 2.9, "lr": 1e-4}, {"step": 10, "phase": "easy", "loss": 2.1, "lr": 2e-4},
          {"step": 15, "phase": "medium", "loss": 1.5, "lr": 2e-4}, {"step": 20, "phase": "hard", "loss": 1.2, "lr": 1e-4}]


def dpo_metrics(margins):
    """Stage 06's metrics lines (its field names), one per step, with these reward margins."""
    return [{"step": i + 1, "epoch": 1.0, "lr": 2e-5, "loss": 0.69 - m, "rewards/chosen": m / 2,
             "rewards/rejected": -m / 2, "rewards/accuracy": min(1.0, 2 * m), "rewards/margin": m, "pairs": 4}
            for i, m in enumerate(margins)]


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def fixture_results(directory, levels):
    directory.mkdir()
    for name, level in levels.items():
        write_fixture_run(directory / name, name, level)
    return directory


def test_series_splits_the_warm_up_loss_by_phase_and_keeps_dpo_steps_in_order():
    assert report.series(WARMUP, "loss", "phase") == {"easy": ([5, 10], [2.9, 2.1]), "medium": ([15], [1.5]),
                                                       "hard": ([20], [1.2])}
    assert report.series(dpo_metrics([0.0, 0.1, 0.3]), "rewards/margin") == {None: ([1, 2, 3], [0.0, 0.1, 0.3])}
    assert report.series([], "loss", "phase") == {}


def test_read_metrics_names_the_file_and_line_of_a_malformed_line(tmp_path):
    path = tmp_path / "iter_1" / "metrics.jsonl"
    write_jsonl(path, dpo_metrics([0.1, 0.2]))
    fields = ["step", *report.DPO_CURVES]
    assert [r["rewards/margin"] for r in report.read_metrics(path, fields)] == [0.1, 0.2]
    for bad in ('{"step": 3, "loss"', json.dumps({"step": 3, "loss": 0.5, "rewards/accuracy": 1.0}), "[1, 2]", ""):
        path.write_text(json.dumps(dpo_metrics([0.1])[0]) + "\n" + bad + "\n")
        with pytest.raises(RecordError, match=rf"{path}:2: expected a JSON object with step, loss, rewards/margin"):
            report.read_metrics(path, fields)


def test_the_plotted_differences_are_compare_pys_checkpoint_minus_warm_up(tmp_path):
    results = fixture_results(tmp_path / "results", {"base": 0.0, "warmup": 0.3, "iter_1": 0.4})
    directories = {s["checkpoint"]: d for d, s in report.load_summaries(results)}
    compared = report.compare_all(directories, 500, 0)
    panels = report.warmup_series(directories, compared)
    assert "BFCL-v3: Overall" in panels and "API-Bank: all items" in panels
    overall = {name: rest for name, *rest in panels["BFCL-v3: Overall"]}
    assert list(overall) == ["base", "iter_1"]  # report order; the warm-up is the zero line
    row = compare.compare(directories["base"], directories["warmup"], resamples=500)["bfcl_verdicts.jsonl"]["rows"]
    warmup_minus_base = next(r for r in row if r["measure"] == "Overall")
    # base was compared the other way round (warm-up vs base): the plot turns it into base - warm-up
    assert overall["base"] == pytest.approx([-warmup_minus_base["diff"], -warmup_minus_base["high"],
                                             -warmup_minus_base["low"]])
    assert overall["base"][0] < overall["base"][2] < 0 < overall["iter_1"][1] < overall["iter_1"][0]


def test_report_draws_and_links_both_plots_and_names_a_missing_metrics_file(tmp_path, monkeypatch):
    results = fixture_results(tmp_path / "results", {"base": 0.0, "warmup": 0.3, "iter_1": 0.4, "iter_2": 0.5})
    checkpoints = tmp_path / "checkpoints"
    write_jsonl(checkpoints / "warmup" / "metrics.jsonl", WARMUP)
    write_jsonl(checkpoints / "iter_1" / "metrics.jsonl", dpo_metrics([0.0, 0.2, 0.4]))
    (checkpoints / "iter_2").mkdir()  # trained, but its metrics are gone
    run_main(report, monkeypatch, "--results", str(results), "--checkpoints-dir", str(checkpoints),
             "--resamples", "200")

    text = (results / "report.md").read_text()
    for name in ("vs_warmup.png", "training_curves.png"):
        assert f"]({name})" in text
        png = (results / name).read_bytes()
        assert png[:8] == PNG and len(png) > 10_000
    assert f"No {checkpoints}/iter_2/metrics.jsonl: iter_2 is left out of the training curves." in text
    assert not list(results.glob(".*.tmp.png"))

    (checkpoints / "iter_1" / "metrics.jsonl").write_text(json.dumps(dpo_metrics([0.1])[0]) + "\nnot json\n")
    with pytest.raises(RecordError, match=rf"{checkpoints}/iter_1/metrics.jsonl:2: expected a JSON object"):
        run_main(report, monkeypatch, "--results", str(results), "--checkpoints-dir", str(checkpoints),
                 "--resamples", "200")


def test_report_says_why_a_plot_is_left_out(tmp_path, monkeypatch):
    results = fixture_results(tmp_path / "results", {"base": 0.0, "iter_1": 0.4})
    (results / "vs_warmup.png").write_bytes(PNG)  # an earlier report's: it must not stay beside this one
    run_main(report, monkeypatch, "--results", str(results), "--checkpoints-dir", str(tmp_path / "none"),
             "--resamples", "200")
    text = (results / "report.md").read_text()
    assert "No vs_warmup.png: no warm-up among the checkpoints." in text and "](vs_warmup.png)" not in text
    assert f"No {tmp_path}/none/warmup/metrics.jsonl: warmup is left out" in text
    assert "No training_curves.png: no metrics to draw." in text and "](training_curves.png)" not in text
    assert not (results / "vs_warmup.png").exists() and not (results / "training_curves.png").exists()
    assert (results / "accuracy_vs_iteration.png").read_bytes()[:8] == PNG  # the rest of the report is there


def test_make_report_passes_the_runs_checkpoints_directory(tmp_path):
    checkout = copy_checkout(tmp_path)
    commands = " ".join(make(checkout, "-n", "report", "RUN=t").stdout.split())
    assert "eval/report.py --results eval/results/t --data data/t --checkpoints-dir checkpoints/t" in commands
