"""Regenerate `generated/` from `proto/`, or check that it is fresh (`--check`).

Python messages, typed `.pyi` stubs for messages and gRPC stubs (mypy-protobuf), and a
descriptor set with source info (comments) for the gateway's OpenAPI document.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
THIRD_PARTY = ROOT / "third_party" / "googleapis"
OUT = ROOT / "generated"
PACKAGE_DIR = Path("exodrive") / "v1"
DESCRIPTOR_SET = PACKAGE_DIR / "exodrive.binpb"


def generate(out: Path) -> None:
    import grpc_tools

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    bin_dir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"-I{PROTO_ROOT}",
        f"-I{THIRD_PARTY}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--mypy_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out={out}",
        f"--descriptor_set_out={out / DESCRIPTOR_SET}",
        "--include_source_info",
        "--include_imports",
        *protos,
    ]
    (out / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", *args]  # our own interpreter and paths: nothing untrusted
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        sys.exit(f"protoc failed:\n{result.stderr}")
    for package in (out / "exodrive", out / PACKAGE_DIR):
        (package / "__init__.py").touch()
        (package / "py.typed").touch()


def differences(left: Path, right: Path) -> list[str]:
    names = {p.relative_to(left) for p in left.rglob("*") if p.is_file()}
    names |= {p.relative_to(right) for p in right.rglob("*") if p.is_file()}
    return sorted(
        str(n)
        for n in names
        if "__pycache__" not in n.parts
        and not (
            (left / n).is_file() and (right / n).is_file() and filecmp.cmp(left / n, right / n, shallow=False)
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when generated/ is stale")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        stale = differences(fresh, OUT)
        if options.check:
            if stale:
                sys.exit(
                    "generated/ does not match proto/; run `make generate`. Differs: " + ", ".join(stale)
                )
            print("generated/ matches proto/")
            return
        shutil.rmtree(OUT, ignore_errors=True)
        shutil.copytree(fresh, OUT)
        print(f"regenerated {len(list(OUT.rglob('*.py*')))} files in generated/")


if __name__ == "__main__":
    main()
