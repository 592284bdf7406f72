"""The signatures that join a layer's parts: its input read, its output bank claim, its rows' outputs,
the debug tap of an activation buffer and the run-time weight write.

Each is written from the side that drives the request (a sequencer, a systolic array, the top's write
bus): that side holds it as `Out(...)`, the buffer or store that answers holds `In(...)`, and
hw/top.py joins them with `wiring.connect`. Both sides build the signature from the same numbers, so
a mismatch in widths is an error at elaboration, not a silent truncation.

Banks: every buffer has two (image n lives in bank n % 2), so the flags are 2 bits, bit b for bank b.
"""

from __future__ import annotations

from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.contract.bits import bits_for


def read_select(words: int) -> data.StructLayout:
    """One copy of a two-stage read's select: the word number and the bank."""
    return data.StructLayout({"word": bits_for(words), "bank": 1})


class InputReadSignature(wiring.Signature):
    """A layer reads one input image from a two-bank buffer, word by word (the sequencer's side).

    bank: the bank read; lin: plane · words + word, the address in a plane-major image memory (image
    buffer); word: the word within the plane (activation buffer); data: that word, `read_latency`
    cycles later (hw/sequencer.py); release: the last read of the image was issued; ready: bit b, a
    whole image waits in bank b. copies: register copies of (word, bank), one per slice of a
    two-stage read's first-stage muxes (hw/buffers.py), so no select net spans the buffer.
    """

    def __init__(self, *, words: int, planes: int, lanes: int, copies: int = 0):
        self.words, self.planes, self.lanes, self.copies = words, planes, lanes, copies
        members = {
            "bank": Out(1),
            "lin": Out(bits_for(planes * words)),
            "word": Out(bits_for(words)),
            "data": In(lanes),
            "release": Out(1),
            "ready": In(2),
        }
        if copies:
            members["copies"] = Out(data.ArrayLayout(read_select(words), copies))
        super().__init__(members)


class BankClaimSignature(wiring.Signature):
    """A layer starts writing an image into bank `bank` of what follows it (the sequencer's side).

    free: bit b, bank b may take a new image (an activation buffer's empty bank; the argmax's result FIFO
    credit, the same for both banks).
    """

    def __init__(self):
        super().__init__({"start": Out(1), "bank": Out(1), "free": In(2)})


class RowOutputSignature(wiring.Signature):
    """A hidden layer's P rows hand their output bits on (the systolic array's side).

    Per row p: shift[p] (a neuron finished), bits[p] its output bit, banks[p] the image bank it belongs
    to; done / done_bank: the last row finished the image's last neuron.
    """

    def __init__(self, rows: int):
        self.rows = rows
        super().__init__({"shift": Out(rows), "bits": Out(rows), "banks": Out(rows), "done": Out(1), "done_bank": Out(1)})


class DebugTapSignature(wiring.Signature):
    """A hidden layer's whole activation vector for the debug stream (the activation buffer's side).

    bits: the vector of bank `bank`; avail: bit b, bank b holds an image not yet sent; ack: it was sent.
    """

    def __init__(self, width: int):
        self.width = width
        super().__init__({"bits": Out(width), "avail": Out(2), "bank": In(1), "ack": In(1)})


class WeightWriteSignature(wiring.Signature):
    """Run-time weight writes into a layer's rows (the writer's side): en[p] writes `data` at `addr` of row p."""

    def __init__(self, *, rows: int, addr_width: int, data_width: int):
        super().__init__({"en": Out(rows), "addr": Out(addr_width), "data": Out(data_width)})
