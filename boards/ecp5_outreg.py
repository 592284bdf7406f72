"""Move the flip-flop right after an ECP5 block RAM into the RAM's own output register (REGMODE OUTREG).

Yosys maps every ECP5 block RAM with REGMODE NOREG: its data leaves the DP16KD 5.8 ns after the clock
(speed grade 6), which leaves ~2.5 ns of a 120 MHz cycle to reach the next flip-flop. The accelerator
already follows each RAM read with a flip-flop that has no other load (hw/array.py `w_near`, the image
buffer's `read_reg`). The DP16KD has that flip-flop built in: with REGMODE OUTREG its output register
samples the read data every clock its OCE is high, and the data leaves ~0.7 ns after the clock. Same
cycle count, same values: the register is the one the design already had, now inside the RAM.

This pass runs on Yosys' JSON netlist (after synth_ecp5), before nextpnr. A read port is moved only when
every data output it uses drives exactly one flip-flop and nothing else, and that flip-flop is clocked on
the rising edge of the port's read clock, always enabled, never reset and starts at 0; the port's read
reset must be tied low. Anything else is left as it is, so the pass never changes what the design computes.

    python -m fedxnor.boards.ecp5_outreg IN.json OUT.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedxnor.atomic import write_text_atomic

RAM = "DP16KD"
FF = "TRELLIS_FF"
PDP_WIDTH = 36  # DATA_WIDTH_A of a DP16KD in pseudo-dual-port mode: both halves read on port B


def _int_param(value: Any) -> int:
    """A Yosys JSON parameter as an integer (integers are written as binary strings)."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text, 2) if text and set(text) <= {"0", "1"} else int(text)


def _str_param(cell: dict, name: str, default: str) -> str:
    """A string parameter; Yosys' JSON adds a space to a string that would read as bits ('1 ')."""
    value = str(cell["parameters"].get(name, default))
    return value[:-1] if value.endswith(" ") else value


def _tied(cell: dict, port: str, value: str) -> bool:
    """True if `port` is unconnected or tied to the constant `value` ("0"/"1")."""
    bits = cell["connections"].get(port)
    return bits is None or list(bits) == [value]


def _always_enabled(ff: dict) -> bool:
    mux = _str_param(ff, "CEMUX", "1")
    return mux == "1" or (mux == "CE" and _tied(ff, "CE", "1")) or (mux == "INV" and _tied(ff, "CE", "0"))


def _never_reset(ff: dict) -> bool:
    mux = _str_param(ff, "LSRMUX", "LSR")
    return (mux == "LSR" and _tied(ff, "LSR", "0")) or (mux == "INV" and _tied(ff, "LSR", "1"))


def _read_ports(ram: dict) -> list[tuple[str, list[str]]]:
    """[(clock side 'A'/'B', its data output ports)]: in PDP mode all 36 outputs belong to port B's read."""
    outs = {side: [f"DO{side}{i}" for i in range(18)] for side in "AB"}
    if _int_param(ram["parameters"].get("DATA_WIDTH_A", 18)) == PDP_WIDTH:
        return [("B", outs["A"] + outs["B"])]
    return [("A", outs["A"]), ("B", outs["B"])]


def absorb_ram_output_registers(netlist: dict, top: str | None = None) -> int:
    """Move eligible flip-flops into their DP16KD's output register, in place; the number moved."""
    modules = netlist["modules"]
    name = top or next((n for n, m in modules.items() if m.get("attributes", {}).get("top")), next(iter(modules)))
    module = modules[name]
    cells: dict[str, dict] = module["cells"]
    sinks: dict[int, list[tuple[str, str]]] = {}  # net bit -> the (cell, input port)s it drives
    for cname, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell.get("port_directions", {}).get(port) != "output":
                for b in bits:
                    if isinstance(b, int):
                        sinks.setdefault(b, []).append((cname, port))
    for port in module.get("ports", {}).values():  # a module output is a load the pass cannot see past
        if port.get("direction") != "input":
            for b in port["bits"]:
                if isinstance(b, int):
                    sinks.setdefault(b, []).append(("", "module port"))

    moved = 0
    for ram in [c for c in cells.values() if c["type"] == RAM]:
        pdp = _int_param(ram["parameters"].get("DATA_WIDTH_A", 18)) == PDP_WIDTH
        for side, outputs in _read_ports(ram):
            if _str_param(ram, f"REGMODE_{side}", "NOREG") != "NOREG":
                continue
            clock = ram["connections"].get(f"CLK{side}", [])
            resets = ("RSTA", "RSTB") if pdp else (f"RST{side}",)
            if (len(clock) != 1 or not isinstance(clock[0], int) or _str_param(ram, f"CLK{side}MUX", f"CLK{side}")
                    != f"CLK{side}" or not all(_tied(ram, r, "0") for r in resets)):
                continue
            plan: list[tuple[str, str]] = []  # (RAM output, flip-flop to absorb)
            for out in outputs:
                bits = ram["connections"].get(out)
                if not bits or not isinstance(bits[0], int) or bits[0] not in sinks:
                    continue  # unused output
                loads = sinks[bits[0]]
                ff_name, ff_port = loads[0]
                ff = cells.get(ff_name)
                if not (len(loads) == 1 and ff_port == "DI" and ff is not None and ff["type"] == FF
                        and ff["connections"].get("CLK") == clock and _str_param(ff, "CLKMUX", "CLK") == "CLK"
                        and _always_enabled(ff) and _never_reset(ff)
                        and _str_param(ff, "REGSET", "RESET") == "RESET"):  # starts at 0, as the RAM's register
                    plan = []
                    break
                plan.append((out, ff_name))
            if not plan:
                continue
            for out, ff_name in plan:
                ram["connections"][out] = cells.pop(ff_name)["connections"]["Q"]
            for s in ("AB" if pdp else side):  # PDP: one register setting for both halves, as nextpnr's PDPW16KD
                ram["parameters"][f"REGMODE_{s}"] = "OUTREG"
                ram["connections"][f"OCE{s}"] = ["1"]
            moved += len(plan)
    return moved


def absorb_file(src: str | Path, dst: str | Path) -> int:
    """absorb_ram_output_registers on a JSON netlist file, written to `dst` (atomically); the number moved."""
    netlist = json.loads(Path(src).read_text())
    moved = absorb_ram_output_registers(netlist)
    write_text_atomic(Path(dst), json.dumps(netlist))
    return moved


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m fedxnor.boards.ecp5_outreg IN.json OUT.json", file=sys.stderr)
        return 2
    print(f"{absorb_file(argv[0], argv[1])} flip-flops moved into block-RAM output registers")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
