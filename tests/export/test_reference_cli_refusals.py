"""`fedxnor export`, `reference` and `verify` refuse counts below 1, labels the model cannot output, and output
locations that are not theirs: exit 2, one line, nothing written, before any work."""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import assert_refused, files_under, run_cli
from fxnets import random_network
from hypothesis import given, settings
from hypothesis import strategies as st
from idx_files import learnable_set

from fedxnor.export.manifest import Folding, write_export

COUNT_EXAMPLES = 25  # per command below: 3 x 25 cases


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    """A 16-input, 3-class export with its own test inputs and labels, and an IDX set of 4 x 4 images labelled 0..9."""
    root = tmp_path_factory.mktemp("refusals")
    rng = np.random.default_rng(7)
    net = random_network(rng, [16, 6, 3], input_bits=8)
    exp = write_export(net, root / "exp", [Folding(2, 5), Folding(1, 6)], input_spec={"shape": [4, 4], "encoding": "pixels"})
    return exp, learnable_set(root / "idx4x4", (4, 4), n_train=20, n_test=40)


def not_a_count():
    return st.integers(max_value=0) | st.integers(min_value=-(10**30), max_value=-(10**18))


@settings(max_examples=COUNT_EXAMPLES, deadline=None)
@given(n=not_a_count())
def test_reference_images_below_one_refused(small_export, n):
    exp, data = small_export
    run = run_cli(["reference", exp, "--data", data, f"--images={n}"])
    assert_refused(run)
    assert "--images must be at least 1" in run.err


@settings(max_examples=COUNT_EXAMPLES, deadline=None)
@given(n=not_a_count())
def test_export_check_images_below_one_refused_before_the_checkpoint_is_read(tmp_path_factory, n):
    out = tmp_path_factory.mktemp("export_out")
    run = run_cli(["export", out / "no-such-checkpoint.pt", "--out", out / "exp", f"--check-images={n}"])
    assert_refused(run, nothing_in=out)
    assert "--check-images must be at least 1" in run.err


@settings(max_examples=COUNT_EXAMPLES, deadline=None)
@given(n=not_a_count())
def test_verify_images_below_one_refused(small_export, n):
    exp, data = small_export
    run = run_cli(["verify", exp, "--sim", "icarus", "--data", data, f"--images={n}"])
    assert_refused(run)
    assert "--images must be at least 1" in run.err


def test_reference_labels_outside_the_model_classes_refused(small_export):
    """Labels 0..9 against a 3-class model: an accuracy would be meaningless, not 0.0 with exit 0."""
    exp, data = small_export
    run = run_cli(["reference", exp, "--data", data])
    assert_refused(run)
    assert "labels up to 9" in run.err and "3 classes" in run.err and "--data" in run.err
    run = run_cli(["reference", exp, "--data", data, "--images", "40"])
    assert_refused(run)


def test_reference_labels_inside_the_classes_run(tmp_path):
    """The same data with labels folded into 0..2 is scored (the refusal above is about the labels, nothing else)."""
    from idx_files import idx_bytes, write_split

    rng = np.random.default_rng(1)
    net = random_network(rng, [16, 3], input_bits=8)
    exp = write_export(net, tmp_path / "exp", [Folding(1, 4)], input_spec={"shape": [4, 4], "encoding": "pixels"})
    x = rng.integers(0, 256, (30, 4, 4)).astype(np.uint8)
    write_split(tmp_path / "idx", "test", idx_bytes(x), idx_bytes(rng.integers(0, 3, 30).astype(np.uint8)))
    run = run_cli(["reference", exp, "--data", tmp_path / "idx", "--json"])
    assert run.code == 0, run.err
    assert '"images": 30' in run.out


def test_export_out_that_is_not_an_export_directory_refused(tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me too")
    before = files_under(tmp_path)
    for out, message in ((precious, "not an export"), (a_file, "is a file")):
        run = run_cli(["export", tmp_path / "no-such-checkpoint.pt", "--out", out])
        assert_refused(run, nothing_in=tmp_path, before=before)
        assert message in run.err
    assert (precious / "notes.txt").read_text() == "keep me" and a_file.read_text() == "keep me too"
