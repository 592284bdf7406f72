"""Re-pack an export with other foldings: the same network, source, input spec and extra files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fedxnor.contract.folding import Folding
from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import load_export, write_export
from fedxnor.hw.plan.plan import check_foldings, specs_of


def refold_export(src_dir: Path | str, dst_dir: Path | str, foldings: Sequence[Folding]) -> Path:
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    exp = load_export(src_dir)
    if src_dir.resolve() == dst_dir.resolve():
        raise FedxnorError(f"{dst_dir}: refold into a new directory, not over the source export")
    check_foldings(specs_of(exp), foldings)
    m = exp.manifest
    known = {"schema", "schema_version", "source", "input", "num_classes", "layers", "files"}
    extra_files = {name: (src_dir / ref["file"]).read_bytes() for name, ref in m.get("files", {}).items()}
    return write_export(exp.network, dst_dir, list(foldings), source=m.get("source"), input_spec=dict(m["input"]),
                        extra_files=extra_files, extra_manifest={k: v for k, v in m.items() if k not in known},
                        names=[i.name for i in exp.layers])
