"""Run the code blocks of an reStructuredText page with Sphinx doctest's
semantics, without Sphinx: every ``testsetup`` block first, then every
``testcode`` block in order (each followed by its ``testoutput``, compared
with ELLIPSIS), then every ``testcleanup`` block, all in one namespace.
``:skipif:`` expressions are evaluated in that namespace.

Used to run the usage page (the acceptance spec) against the drivers.
"""
from __future__ import annotations

import contextlib
import doctest
import io
import os
import re
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

_DIRECTIVE = re.compile(r"^\.\. (testsetup|testcode|testoutput|testcleanup)::\s*(.*)$")


@dataclass
class Block:
    kind: str
    code: str
    lineno: int
    options: dict[str, str] = field(default_factory=dict)
    output: Block | None = None


def parse(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if not m:
            i += 1
            continue
        kind, lineno = m.group(1), i + 1
        i += 1
        options: dict[str, str] = {}
        while i < len(lines) and re.match(r"^\s+:([\w-]+):(.*)$", lines[i]):
            om = re.match(r"^\s+:([\w-]+):(.*)$", lines[i])
            assert om is not None
            options[om.group(1)] = om.group(2).strip()
            i += 1
        body: list[str] = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
            body.append(lines[i])
            i += 1
        code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        block = Block(kind, code, lineno, options)
        if kind == "testoutput":
            if blocks and blocks[-1].kind == "testcode" and blocks[-1].output is None:
                blocks[-1].output = block
            continue  # Sphinx ignores an output block without a code block
        blocks.append(block)
    return blocks


class PageFailure(AssertionError):
    pass


def _skipped(block: Block, ns: dict[str, Any]) -> bool:
    expr = block.options.get("skipif")
    return bool(expr) and bool(eval(expr, ns))  # noqa: S307 - the page's own expression


def run(blocks: list[Block], namespace: dict[str, Any], *, source: str = "page",
        transform: Callable[[Block], str] | None = None) -> list[str]:
    """Run the blocks; returns a log line per block; raises PageFailure on the
    first block that fails or prints something other than its testoutput."""
    log: list[str] = []
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL

    def execute(block: Block, check_output: bool) -> None:
        code = transform(block) if transform else block.code
        buf = io.StringIO()
        t0 = time.perf_counter()
        try:
            with contextlib.redirect_stdout(buf):
                exec(compile(code, f"{source}:{block.lineno}", "exec"), namespace)  # noqa: S102
        except Exception as e:
            raise PageFailure(
                f"{block.kind} block at {source} line {block.lineno} raised "
                f"{type(e).__name__}: {e}\n--- code ---\n{code}") from e
        got = buf.getvalue()
        if check_output and block.output is not None:
            want = block.output.code
            if not checker.check_output(want, got, flags):
                raise PageFailure(
                    f"output of testcode at {source} line {block.lineno} differs:\n"
                    + checker.output_difference(doctest.Example("", want), got, flags))
        log.append(f"{block.kind} line {block.lineno}: ran in {time.perf_counter() - t0:.1f} s")

    for block in [b for b in blocks if b.kind == "testsetup"]:
        if _skipped(block, namespace):
            log.append(f"testsetup line {block.lineno}: skipped")
            continue
        execute(block, False)
    try:
        for block in [b for b in blocks if b.kind == "testcode"]:
            if _skipped(block, namespace):
                log.append(f"testcode line {block.lineno}: skipped")
                continue
            execute(block, True)
    finally:
        for block in [b for b in blocks if b.kind == "testcleanup"]:
            if not _skipped(block, namespace):
                execute(block, False)
    return log


def find_usage_page() -> Path | None:
    """The project's acceptance spec, ``shared/spec/usage.rst``: from
    ``$LIBERTEM_LIVE_SHARED`` (set by the noxfile), else the ``shared/``
    folder beside the repository checkout."""
    shared = os.environ.get("LIBERTEM_LIVE_SHARED")
    candidates = [Path(shared)] if shared else []
    here = Path(__file__).resolve()
    candidates += [parent / "shared" for parent in here.parents]
    for root in candidates:
        page = root / "spec" / "usage.rst"
        if page.exists():
            return page
    return None
