"""bench/bench_federated.py's multi-seed bookkeeping: per-seed rows, mean ± std, goals on means paired by seed."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_federated as bf  # noqa: E402


def _row(label: str, acc: float, seed: int | None, part: str = "dir0.3") -> dict:
    r = {"label": label, "partition": part, "test_accuracy": acc}
    return r if seed is None else {**r, "seed": seed}


def test_summary_mean_and_sample_std():
    rows = [_row("FedAvg", 0.80, 0), _row("FedAvg", 0.84, 1), _row("FedAvg", 0.82, 2), _row("FedBAT", 0.81, None)]
    s = {(e["partition"], e["label"]): e for e in bf.summary(rows)}
    avg = s[("dir0.3", "FedAvg")]
    assert avg["seeds"] == [0, 1, 2] and avg["accuracy"] == [0.80, 0.84, 0.82]
    assert avg["mean"] == pytest.approx(0.82) and avg["std"] == pytest.approx(0.02)
    bat = s[("dir0.3", "FedBAT")]  # a row without a seed is seed 0; one seed has std 0
    assert bat["seeds"] == [0] and bat["std"] == 0.0


def test_goals_compare_means_over_the_seeds_both_sides_have():
    rows = [_row("FedAvg", 0.80, 0), _row("FedAvg", 0.84, 1), _row("FedAvg", 0.70, 2),
            _row("FedBAT", 0.81, 0), _row("FedBAT", 0.82, 1),
            _row("SignSGD", 0.83, 0), _row("SignSGD", 0.79, 1),
            _row("EF-SignSGD", 0.80, 0), _row("EF-SignSGD", 0.80, 1)]
    g = bf.goals(rows)["dir0.3"]
    # FedAvg's seed 2 has no FedBAT twin: it is left out of the comparison
    assert g["fedbat_vs_fedavg_seeds"] == [0, 1] and g["fedbat_minus_fedavg"] == pytest.approx(-0.005)
    assert g["fedbat_within_1pt"]
    assert g["fedbat_minus_best_sign"] == pytest.approx(0.815 - 0.81) and g["fedbat_above_sign"]
    rows.append(_row("EF-SignSGD", 0.99, 2))  # a seed FedBAT lacks changes nothing
    assert bf.goals(rows)["dir0.3"]["fedbat_minus_best_sign"] == pytest.approx(g["fedbat_minus_best_sign"])


def test_goals_of_the_conv_labels_and_the_one_bit_uplink():
    rows = [_row("FedAvg-conv", 0.85, 0), _row("FedBNN-conv", 0.835, 0), _row("FedBAT-conv", 0.835, 0),
            _row("FedAvg", 0.80, 0), _row("FedBNN", 0.76, 0)]
    rows[2] |= {"codec": "fedbat", "uplink_bits_per_param": 1.058}
    g = bf.goals(rows)["dir0.3"]
    assert g["conv_fedbnn_minus_fedavg"] == pytest.approx(-0.015) and g["conv_fedbnn_within_2pt"]
    assert g["conv_fedbat_minus_fedavg"] == pytest.approx(-0.015) and not g["conv_fedbat_within_1pt"]
    assert g["fedbnn_minus_fedavg"] == pytest.approx(-0.04) and not g["fedbnn_within_3pt"]  # the MLP's own pair
    assert g["one_bit_uplink_max_bits_per_param"] == 1.058 and g["one_bit_uplink_within_1.1"]


def test_fedbnn_conv_against_fedavg_of_the_same_bnn():
    rows = [_row("FedBNN-conv", 0.82, 0), _row("FedBNN-conv", 0.83, 1), _row("FedAvg-BNN-conv", 0.80, 0)]
    g = bf.goals(rows)["dir0.3"]
    assert g["conv_fedbnn_minus_fedavg_bnn"] == pytest.approx(0.02) and g["conv_fedbnn_vs_fedavg_bnn_seeds"] == [0]
    assert g["conv_fedbnn_within_2pt_of_fedavg_bnn"]
    rows.append(_row("FedAvg-BNN-conv", 0.85, 1))  # over seeds 0 and 1 both sides average 0.825
    g = bf.goals(rows)["dir0.3"]
    assert g["conv_fedbnn_minus_fedavg_bnn"] == pytest.approx(0.0) and g["conv_fedbnn_within_2pt_of_fedavg_bnn"]
    rows += [_row("FedAvg-BNN-conv", 0.90, 2), _row("FedBNN-conv", 0.80, 2)]
    g = bf.goals(rows)["dir0.3"]  # seed 2 is 10 points behind: the mean over 0, 1, 2 falls 3.33 points short
    assert g["conv_fedbnn_minus_fedavg_bnn"] == pytest.approx(-0.0333, abs=1e-4)
    assert not g["conv_fedbnn_within_2pt_of_fedavg_bnn"]
    assert bf.RUNS["FedAvg-BNN-conv"] == ("fedavg", "cnv-small", "fp32") and "FedAvg-BNN-conv" not in bf.DEFAULT_RUNS


def test_merge_runs_side_by_side_keep_each_others_rows(tmp_path, monkeypatch):
    import common

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    (tmp_path / "t.json").write_text(json.dumps({"settings": {"command": "first"},
                                                 "rows": [_row("FedAvg-conv", 0.87, 0)]}))
    base = ["bench_federated.py", "--name", "t", "--merge", "--partitions", "dir0.3", "--no-export"]
    monkeypatch.setattr(bf, "SHARED", ())  # the fake file has none of the run's settings

    def fake_run(part, label, seed, args, tmp):
        if label == "FedBAT-conv":  # while this run trains, another --merge run finishes its row
            monkeypatch.setattr(sys, "argv", [*base, "--runs", "FedBNN-conv", "--seeds", "1"])
            bf.main()
        return _row(label, 0.8 + seed / 100, seed, part)

    monkeypatch.setattr(bf, "run_row", fake_run)
    monkeypatch.setattr(sys, "argv", [*base, "--runs", "FedBAT-conv", "--seeds", "0"])
    bf.main()
    rows = json.loads((tmp_path / "t.json").read_text())["rows"]
    assert sorted((r["label"], r["seed"]) for r in rows) == [("FedAvg-conv", 0), ("FedBAT-conv", 0), ("FedBNN-conv", 1)]

