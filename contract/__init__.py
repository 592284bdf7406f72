"""The integer contract: what every stage of fedxnor computes, defined once.

Training's bridge, the exporter, the reference, the gateware, the simulators, the
planner and the boards all read a layer through one specification of its kind
(`fedxnor.contract.dense.Dense`, `conv.Conv`, `pool.MaxPool`): its shape, folding
legality, accumulator range, ROM packing, reference computation, cycles and resource
cost. A new layer kind is a new module here plus its gateware (docs/architecture.md).

This package imports numpy and, of the project, only `fedxnor.errors`: never torch,
Amaranth, or a stage (tests/test_architecture.py enforces it).

Modules: bits (widths and packing helpers), folding (a layer's (P, L)), matrix (the
M x K weight matrix's folding, packing, exact product and word walk, shared by the
weighted kinds), dense (the fully connected kind), conv (binary k x k convolution on
NHWC maps), pool (max-pool = OR of bits), network (a chain of layers; which kinds the
hardware runs yet), beats (the image, class and debug stream layouts), structure (the
gateware's structural numbers that cost and cycles use), cycles (the pipeline's cycle
model), devices (the FPGAs we plan for), cost (the resource model).
"""
