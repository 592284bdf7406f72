"""Every named model plans with the layers it exports to: BNNConfig.layer_specs (what the flow's pre-flight and
the board fit check use before training) equals the specifications of the bridge's integer network."""

from __future__ import annotations

import pytest

from fedxnor.train.models import BNN, MODELS


@pytest.mark.parametrize("name", sorted(MODELS))
def test_layer_specs_are_the_bridges(name):
    cfg = MODELS[name]
    net = BNN(cfg).to_int_network()
    assert [la.spec for la in net.layers] == [
        type(s)(**{**s.__dict__, "name": la.spec.name}) for s, la in zip(cfg.layer_specs(), net.layers)]
