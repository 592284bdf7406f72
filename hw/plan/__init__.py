"""Planning: how to fold a network onto a device (FINN's SetFolding, exact).

budget (what a device allows), plan (the modelled cost of given foldings), solver (the foldings with the
smallest initiation interval that fit, then the fewest LUTs), fit (does an export fit, and why not),
refold (re-pack an export with other foldings). Each layer's cycles and cost come from its kind in
fedxnor.contract; nothing here reads a layer's internals.
"""
